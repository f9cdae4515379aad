"""Produces seed records `i|msg-i` with the official Python client (the C++ client inside),
so the tests read data written by a producer this project did not write.

usage: python_producer.py URL TOPIC START COUNT COMPRESSION BATCHING
  COMPRESSION: NONE | LZ4 | ZLib | ZSTD | SNAPPY ; BATCHING: 0 | 1
"""
import sys

import pulsar


def main() -> None:
    url, topic, start, count, compression, batching = sys.argv[1:7]
    client = pulsar.Client(url)
    producer = client.create_producer(
        topic,
        compression_type=getattr(pulsar.CompressionType, compression),
        batching_enabled=batching == "1",
        batching_max_messages=500,
        batching_max_publish_delay_ms=5,
        block_if_queue_full=True,
    )
    failures = []

    def sent(result, _msg_id):
        if result != pulsar.Result.Ok:
            failures.append(result)

    for i in range(int(start), int(start) + int(count)):
        producer.send_async(f"{i}|msg-{i}".encode(), sent)
    producer.flush()
    client.close()
    if failures:
        sys.exit(f"{len(failures)} sends failed, first: {failures[0]}")


if __name__ == "__main__":
    main()
