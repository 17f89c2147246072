//! Unit tests of [`ServiceTimeEstimator`] with fixed samples.

use super::{MAX_RETRY_AFTER_MS, MIN_RETRY_AFTER_MS, PRIOR_SERVICE_MS, ServiceTimeEstimator};

fn estimator_with_mean(ms: u64) -> ServiceTimeEstimator {
    let mut e = ServiceTimeEstimator::new();
    e.record_ms(ms);
    e
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_prior_stands_until_the_first_sample() {
    let e = ServiceTimeEstimator::new();
    assert_eq!(e.samples(), 0);
    assert!(close(e.mean_ms(), PRIOR_SERVICE_MS));
    assert_eq!(e.predicted_start_ms(0, 1, 1), 2_000);
}

#[test]
fn the_first_sample_replaces_the_prior_and_later_ones_move_it_by_alpha() {
    let mut e = ServiceTimeEstimator::new();
    e.record_ms(1_000);
    assert!(close(e.mean_ms(), 1_000.0));
    e.record_ms(2_000);
    assert!(close(e.mean_ms(), 1_200.0));
    e.record_ms(500);
    assert!(close(e.mean_ms(), 1_060.0));
    assert_eq!(e.samples(), 3);
}

#[test]
fn a_zero_sample_keeps_the_mean_at_least_one_millisecond() {
    let e = estimator_with_mean(0);
    assert!(close(e.mean_ms(), 1.0));
    assert!(e.on_time_probability(3, 1, 1, 10).is_finite());
}

#[test]
fn a_task_starts_at_once_when_a_slot_is_free_for_it() {
    let e = estimator_with_mean(1_000);
    assert_eq!(e.predicted_start_ms(0, 4, 3), 0);
    assert_eq!(e.predicted_start_ms(1, 4, 2), 0);
    assert!(close(e.on_time_probability(0, 4, 3, 0), 1.0));
}

#[test]
fn predicted_start_counts_the_slots_that_must_free_up() {
    let e = estimator_with_mean(1_000);
    assert_eq!(e.predicted_start_ms(1, 4, 3), 250);
    assert_eq!(e.predicted_start_ms(5, 2, 2), 3_000);
    assert_eq!(e.predicted_start_ms(0, 0, 0), 1_000, "no slots counts as one");
}

#[test]
fn retry_after_follows_the_measured_service_time() {
    assert_eq!(estimator_with_mean(1_000).retry_after_ms(10, 10, 2), 500);
    assert_eq!(estimator_with_mean(3_000).retry_after_ms(10, 10, 2), 1_500);
    assert_eq!(estimator_with_mean(1_000).retry_after_ms(12, 10, 1), 3_000);
}

#[test]
fn retry_after_is_clamped_to_a_tenth_of_a_second_and_a_minute() {
    assert_eq!(estimator_with_mean(10).retry_after_ms(4, 4, 1), MIN_RETRY_AFTER_MS);
    assert_eq!(estimator_with_mean(100_000).retry_after_ms(4, 4, 1), MAX_RETRY_AFTER_MS);
    assert_eq!(ServiceTimeEstimator::new().retry_after_ms(0, 0, 0), 2_000);
}

#[test]
fn one_slot_to_wait_for_gives_the_exponential_probability() {
    let e = estimator_with_mean(1_000);
    let p = e.on_time_probability(0, 1, 1, 1_000);
    assert!(close(p, 1.0 - (-1.0f64).exp()), "{p}");
    assert!(close(e.on_time_probability(0, 1, 1, 0), 0.0));
}

#[test]
fn on_time_probability_rises_with_time_and_falls_with_position() {
    let e = estimator_with_mean(1_000);
    let soon = e.on_time_probability(3, 2, 2, 1_000);
    let later = e.on_time_probability(3, 2, 2, 4_000);
    let further_back = e.on_time_probability(6, 2, 2, 4_000);
    assert!(soon < later, "{soon} < {later}");
    assert!(further_back < later, "{further_back} < {later}");
    // At its own prediction an Erlang(4) task starts on time a bit more often than not.
    let at_prediction = e.on_time_probability(3, 2, 2, e.predicted_start_ms(3, 2, 2));
    assert!((0.5..0.7).contains(&at_prediction), "{at_prediction}");
}

#[test]
fn on_time_probability_stays_a_probability_for_very_long_queues() {
    let e = estimator_with_mean(50);
    for within_ms in [0, 1, 1_000, 250_000, u64::MAX] {
        let p = e.on_time_probability(10_000, 1, 1, within_ms);
        assert!((0.0..=1.0).contains(&p), "{within_ms}: {p}");
    }
    assert!(e.on_time_probability(10_000, 1, 1, 1_000) < 1e-6);
    assert!(e.on_time_probability(10_000, 1, 1, 1_000_000) > 1.0 - 1e-6);
}
