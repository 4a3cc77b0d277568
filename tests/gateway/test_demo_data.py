"""The seed command's demo data: reproducible, and fake where it looks personal."""

from __future__ import annotations

from gateway.demo_data import demo_users


def test_demo_users_are_deterministic_and_fake() -> None:
    first = list(demo_users(20, seed=3))
    assert first == list(demo_users(20, seed=3))
    assert first != list(demo_users(20, seed=4))
    for user in first:
        identifiers = user["identifiers"]
        assert isinstance(identifiers, dict)
        assert identifiers["email"].endswith(("@example.com", "@example.org"))
        assert identifiers["phone_number"].startswith("+90555")
    assert len({u["identifiers"]["uuid"] for u in first}) == 20  # type: ignore[index]
