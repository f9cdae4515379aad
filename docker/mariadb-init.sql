-- Databases of the project, created on every `scripts/services.sh up`
-- (idempotent) and by the mariadb image's first start in docker-compose.yml.
-- Must stay idempotent: it also runs against an existing datadir.
CREATE DATABASE IF NOT EXISTS `pulsar2mysql`
    CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS `pulsar2mysql_test`
    CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
