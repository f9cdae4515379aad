# Entry points; each target is a thin wrapper over a script in scripts/.
.PHONY: services services-stop services-status demo test build release image bench bench-full bench-smoke bench-report fmt lint

services:        ## install (if missing) and start Pulsar + MariaDB, wait until ready
	scripts/services.sh up

services-stop:   ## stop Pulsar + MariaDB
	scripts/services.sh down

services-status: ## show whether each service runs and where it listens
	scripts/services.sh status

demo:            ## the seed scenario end to end on local services
	scripts/demo.sh

test:            ## every test: unit + integration against the real services
	scripts/test.sh

build:
	cargo build --release

release:         ## every release artifact into dist/: tarball, .deb, sources, image
	scripts/release.sh

image:           ## the container image, built with podman (no registry needed)
	scripts/podman.sh image

bench:           ## end-to-end benchmarks (1e5 and 1e6, seed records), medians under target/bench/
	scripts/bench.sh

bench-full:      ## the whole comparison of issues 13 and 25 (~50 min): raw results + BENCHMARKS.md + plots
	scripts/bench.sh full

bench-smoke:     ## the seed size, every contender incl. the Flink peer, and the report generator (CI)
	scripts/bench-smoke.sh

bench-report:    ## regenerate BENCHMARKS.md from the newest benches/results/full-* directory
	benches/report.sh "$$(ls -d benches/results/full-* | sort | tail -1)"

fmt:
	cargo fmt --all

lint:
	scripts/vendor-pulsar.sh check
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
