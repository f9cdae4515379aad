"""Produces messages with producer chunking (the official Python client, C++ inside): records
`i|msg-i` padded with spaces to SIZE bytes, each split by the client into chunks of at most
the broker's maxMessageSize (the Python client has no smaller chunk size).

usage: python_chunked_producer.py URL TOPIC COUNT SIZE
"""
import sys

import pulsar


def main() -> None:
    url, topic, count, size = sys.argv[1:5]
    client = pulsar.Client(url)
    producer = client.create_producer(
        topic,
        batching_enabled=False,  # chunking needs batching off
        chunking_enabled=True,
    )
    for i in range(int(count)):
        producer.send(f"{i}|msg-{i}".ljust(int(size)).encode())
    client.close()


if __name__ == "__main__":
    main()
