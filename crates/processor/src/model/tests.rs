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
