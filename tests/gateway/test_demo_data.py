"""The seed command's demo data: reproducible, and fake where it looks personal."""

from __future__ import annotations

from gateway.ucd.demo_data import demo_users


def test_demo_users_are_deterministic_and_fake() -> None:
    first = list(demo_users(20, seed=3))
    assert first == list(demo_users(20, seed=3))
    assert first != list(demo_users(20, seed=4))
    for user in first:
        assert user.user.email is not None
        assert user.user.email.endswith(("@example.com", "@example.org"))
        assert user.user.phone_number is not None
        assert user.user.phone_number.startswith("+90555")
    assert len({u.user.uuid for u in first}) == 20
