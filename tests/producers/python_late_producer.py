"""Writes one record that is stored after a newer one: the C++ client stamps a batch with the
publish time of its first message, so a record held in a batch while another producer's record
goes out is stored later with an earlier publish time (as with several producers or clock skew).

usage: python_late_producer.py URL TOPIC LATE_RECORD NEWER_RECORD
Prints the epoch ms taken just before the late record was sent.
"""
import sys
import time

import pulsar


def main() -> None:
    url, topic, late, newer = sys.argv[1:5]
    client = pulsar.Client(url)
    slow = client.create_producer(
        topic, batching_enabled=True, batching_max_publish_delay_ms=60000,
        batching_max_messages=1000,
    )
    fast = client.create_producer(topic, batching_enabled=False)
    before = int(time.time() * 1000)
    slow.send_async(late.encode(), lambda *_: None)
    time.sleep(1.0)
    fast.send(newer.encode())
    slow.flush()
    client.close()
    print(before)


if __name__ == "__main__":
    main()
