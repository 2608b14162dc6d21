"""When the operator looks at a new OVH user: learned from the recent users' activation."""

import pytest

from ovh_s3_operator.activation import PROBE_EVERY, ActivationEstimate


def simulate(estimate: ActivationEstimate, activation: float, users: int) -> list[int]:
    """Create users one after the other; each is looked at when the estimate says. Returns the looks each took."""
    looks = []
    for user in range(users):
        estimate.started(user, 0.0)
        now, count = 0.0, 0
        while True:
            now += estimate.next_look(user, now)
            count += 1
            ok = now >= activation
            estimate.seen(user, now, ok)
            if ok:
                break
        looks.append(count)
    return looks


def test_nothing_learned_means_the_poll_interval() -> None:
    estimate = ActivationEstimate(poll=2.0)
    estimate.started(1, 100.0)
    assert estimate.next_look(1, 100.0) == 2.0
    assert estimate.expected() is None


@pytest.mark.parametrize("activation", [0.3, 1.0, 2.0, 3.5, 14.0])
def test_one_look_per_user_once_learned(activation: float) -> None:
    estimate = ActivationEstimate(poll=2.0)
    looks = simulate(estimate, activation, 64)
    assert sum(looks[32:]) / 32 <= 1 + 1 / PROBE_EVERY + 0.01  # one look, plus the occasional early probe
    expected = estimate.expected()
    assert expected is not None and activation <= expected <= activation * 1.35


def test_the_estimate_comes_down_when_ovh_gets_faster() -> None:
    estimate = ActivationEstimate(poll=2.0)
    simulate(estimate, 10.0, 40)
    simulate(estimate, 2.0, 200)
    expected = estimate.expected()
    assert expected is not None and expected <= 2.0 * 1.35


def test_a_look_too_early_is_followed_by_short_intervals() -> None:
    estimate = ActivationEstimate(poll=2.0)
    simulate(estimate, 4.0, 10)
    estimate.started(99, 0.0)
    first = estimate.next_look(99, 0.0)
    estimate.seen(99, first - 1.0, ok=False)  # OVH did not have it ready a second before
    expected = estimate.expected()
    assert expected is not None
    assert estimate.next_look(99, first - 1.0) == min(2.0, max(0.25, expected / 4))
