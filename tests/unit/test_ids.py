"""Job ids are version-7 UUIDs: valid, unique, and ordered by creation time."""

import time
import uuid

from tasks.jobs.ids import new_job_id


def test_given_new_ids_then_each_is_a_version_7_rfc_uuid_string():
    for _ in range(1000):
        text = new_job_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_given_ids_made_a_millisecond_apart_then_they_sort_in_creation_order():
    earlier = [new_job_id() for _ in range(50)]
    time.sleep(0.002)
    later = [new_job_id() for _ in range(50)]
    assert max(earlier) < min(later)


def test_given_the_timestamp_field_then_it_is_the_creation_time_in_milliseconds():
    before = time.time_ns() // 1_000_000
    stamp = uuid.UUID(new_job_id()).int >> 80
    after = time.time_ns() // 1_000_000
    assert before <= stamp <= after


def test_given_many_ids_in_one_millisecond_then_none_repeats():
    ids = [new_job_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
