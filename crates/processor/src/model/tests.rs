use super::*;

#[test]
fn breaker_opens_after_threshold_and_probes_once_after_cooldown() {
    let start = Instant::now();
    let mut breaker = Breaker::new(2, Duration::from_secs(10));
    assert!(breaker.allow(start));
    breaker.on_failure(start);
    assert_eq!(breaker.state(start), BreakerState::Closed);
    breaker.on_failure(start);
    assert_eq!(breaker.state(start), BreakerState::Open);
    assert!(!breaker.allow(start + Duration::from_secs(5)));
    let later = start + Duration::from_secs(11);
    assert_eq!(breaker.state(later), BreakerState::HalfOpen);
    assert!(breaker.allow(later), "one probe");
    assert!(!breaker.allow(later), "only one probe at a time");
    breaker.on_success();
    assert_eq!(breaker.state(later), BreakerState::Closed);
}

#[test]
fn a_failed_probe_reopens_the_breaker() {
    let start = Instant::now();
    let mut breaker = Breaker::new(1, Duration::from_secs(10));
    breaker.on_failure(start);
    let later = start + Duration::from_secs(11);
    assert!(breaker.allow(later));
    breaker.on_failure(later);
    assert_eq!(
        breaker.state(later + Duration::from_secs(1)),
        BreakerState::Open
    );
}

#[test]
fn provider_defaults_to_gemini_only_with_a_key() {
    let mut settings = ModelSettings::default();
    assert_eq!(settings.effective_provider(), ProviderKind::Extractive);
    settings.gemini_api_key = Some(SecretString::from("k".to_string()));
    assert_eq!(settings.effective_provider(), ProviderKind::Gemini);
    settings.provider = Some(ProviderKind::Openai);
    assert_eq!(settings.effective_provider(), ProviderKind::Openai);
}

#[test]
fn settings_debug_redacts_keys() {
    let settings = ModelSettings {
        gemini_api_key: Some(SecretString::from("AIza-very-secret".to_string())),
        openai_api_key: Some(SecretString::from("sk-very-secret".to_string())),
        ..Default::default()
    };
    let debug = format!("{settings:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
}

#[test]
fn only_transient_errors_are_retried() {
    assert!(ModelError::Status(429).is_retryable());
    assert!(ModelError::Status(503).is_retryable());
    assert!(ModelError::Timeout(Duration::from_secs(1)).is_retryable());
    assert!(!ModelError::Status(401).is_retryable());
    assert!(!ModelError::BadResponse(String::new()).is_retryable());
}

mod retry_after_header {
    use super::super::retry_after;
    use std::time::Duration;

    const CAP: Duration = Duration::from_secs(10);

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn seconds_and_fractions_are_waits_capped() {
        assert_eq!(retry_after("2", now(), CAP), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(" 0.25 ", now(), CAP),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after("86400", now(), CAP), Some(CAP));
        assert_eq!(retry_after("1e400", now(), CAP), None, "infinite");
    }

    #[test]
    fn nan_negative_and_garbage_are_ignored_not_a_panic() {
        for value in ["NaN", "nan", "-1", "-0.5", "inf", "-inf", "", "soon", "1s"] {
            assert_eq!(retry_after(value, now(), CAP), None, "{value:?}");
        }
    }

    #[test]
    fn http_dates_are_waits_from_now_and_past_ones_no_wait() {
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 12:00:05 GMT", now(), CAP),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after("Mon, 07 Dec 2026 11:00:00 GMT", now(), CAP),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("Tue, 08 Dec 2026 12:00:00 GMT", now(), CAP),
            Some(CAP)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_header_value_is_a_bounded_wait_or_none(value in "\\PC{0,40}") {
            if let Some(wait) = retry_after(&value, now(), CAP) {
                proptest::prop_assert!(wait <= CAP);
            }
        }

        #[test]
        fn any_number_is_a_bounded_wait_or_none(secs in proptest::num::f64::ANY) {
            if let Some(wait) = retry_after(&secs.to_string(), now(), CAP) {
                proptest::prop_assert!(wait <= CAP);
            }
        }
    }
}
