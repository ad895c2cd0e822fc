"""The keyspace: every key of a script is in one Redis Cluster slot, whatever the user or payment;
a payment's id is a UUID4 that names its shard; the shards spread over a cluster's masters."""

import random
import string
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from redis.crc import key_slot

from lib.store import keys
from lib.store.attempts import begin_keys, end_keys
from lib.store.payments import Payment, admission_keys
from lib.worker.processor import charge_keys

RNG = random.Random(20261202)
# Users as clients send them, awkward ones included: braces (Redis reads the first {...} of a
# key as its hash tag), colons, quotes, non-ASCII letters, long ones.
USERS = ["user_123", "test", "{0}", "}{", "a{b}c", "{}", ":", "user:101", '"', "é" * 128, "{user_123}"] + \
    ["".join(RNG.choice(string.printable.strip() + "{}é漢") for _ in range(RNG.randint(1, 128))) for _ in range(2000)]


def one_slot(key_list):
    return len({key_slot(key.encode()) for key in key_list}) == 1


@pytest.mark.parametrize("idempotency_key", [None, "order-42", "{1}", "}"])
def test_every_scripts_keys_hash_to_one_slot_whatever_the_user(idempotency_key):
    for user in USERS:
        payment = Payment.new(user, Decimal(5), "USD")
        scripts = {"admit": admission_keys(payment, idempotency_key), "begin": begin_keys(payment.id),
                   "end": end_keys(payment.id), "charge": charge_keys(payment.id),
                   "list": [keys.user_payments(user), keys.payment(payment.id)]}  # a page's hashes are read with its index
        for name, key_list in scripts.items():
            assert one_slot(key_list), (name, user, key_list)
        # And the user's keys and the payment's share that slot: a user's whole state is one shard.
        assert key_slot(keys.rate_limit(user).encode()) == key_slot(keys.payment(payment.id).encode())


def test_a_payment_id_is_a_uuid4_that_names_its_users_shard():
    for user in USERS[:300]:
        payment_id = Payment.new(user, Decimal(1), "EUR").id
        assert str(uuid.UUID(payment_id, version=4)) == payment_id and uuid.UUID(payment_id).version == 4
        assert keys.shard_of_payment(payment_id) == keys.shard_of_user(user)
    assert len({Payment.new("same user", Decimal(1), "EUR").id for _ in range(1000)}) == 1000  # still random


def test_the_shards_spread_evenly_over_three_masters():
    """Each master of a three-master cluster (redis-cli's even split of the slots) holds a third of the
    shards, within 15 %, and users spread over the shards as evenly."""
    masters = Counter(min(key_slot(keys.unfinished(shard).encode()) * 3 // 16384, 2) for shard in range(keys.SHARDS))
    assert all(abs(count / keys.SHARDS - 1 / 3) <= 0.15 / 3 for count in masters.values()), masters
    users = Counter(keys.shard_of_user(f"user-{n}") for n in range(100_000))
    assert max(users.values()) / min(users.values()) < 1.5
