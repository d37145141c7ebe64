//! `cost-aware-router`: the bundled routing policy (SPEC GW-6).
//!
//! Every mode skips providers whose breaker is open (half-open ones come
//! after the healthy ones) and those whose context is too small for the
//! prompt plus `max_tokens`; a provider that offers the requested model
//! (the hint) comes first. Then, by mode:
//!
//! | mode | order | max price per 1k | max context | max iterations |
//! |---|---|---|---|---|
//! | `normal` | cheapest first | 0.01 | none | 20 |
//! | `deep_research` | largest context, then most capable (dearest) first | 0.1 | none | 50 |
//! | `code` | providers with a code model first, then cheapest | 0.03 | none | 30 |
//! | `ops` | cheapest first | 0.002 | 16000 | 10 |
//!
//! When the budget left is under `low_budget_usd` (default 1.0), every
//! mode goes cheapest first, hint or not. Each default is a config key:
//! `<mode>_max_price_per_1k`, `<mode>_max_context`, `<mode>_max_iterations`
//! (0 removes the limit), `code_models` (substrings that make a model a
//! code model; default `code, coder`), `low_budget_usd`.

use std::cmp::Ordering;

use warden_sdk::config;
use warden_sdk::router::{MODES, ProviderStatus, RouteDecision, RouteRequest};

/// A mode's defaults: max price per 1k, max context, max iterations.
fn defaults(mode: &str) -> (f64, u32, u32) {
    match mode {
        "deep_research" => (0.1, 0, 50),
        "code" => (0.03, 0, 30),
        "ops" => (0.002, 16_000, 10),
        _ => (0.01, 0, 20),
    }
}

#[warden_sdk::router(deadline_ms = 200)]
fn route(request: &RouteRequest) -> Result<RouteDecision, String> {
    let mode = request.mode.as_str();
    if !MODES.contains(&mode) {
        return Err(format!(
            "unknown mode \"{mode}\": expected normal, deep_research, code or ops"
        ));
    }
    let (price, context, iterations) = defaults(mode);
    let max_price: f64 = config::get_parsed(&format!("{mode}_max_price_per_1k"), price)?;
    let max_context: u32 = config::get_parsed(&format!("{mode}_max_context"), context)?;
    let max_iterations: u32 = config::get_parsed(&format!("{mode}_max_iterations"), iterations)?;
    let low_budget: f64 = config::get_parsed("low_budget_usd", 1.0)?;
    let mut code_models = config::get_list("code_models");
    if code_models.is_empty() {
        code_models = vec!["code".to_string(), "coder".to_string()];
    }
    let is_code = |model: &str| {
        let m = model.to_ascii_lowercase();
        code_models.iter().any(|c| m.contains(&c.to_ascii_lowercase()))
    };

    let needed = request.needed_context();
    let fits = |p: &ProviderStatus| u64::from(p.max_context) >= needed;
    let mut usable: Vec<&ProviderStatus> = request
        .providers
        .iter()
        .filter(|p| !p.is_open() && fits(p))
        .collect();
    let mut note = String::new();
    if usable.is_empty() {
        // Nothing healthy fits: offer the rest, cheapest first, and let the
        // host probe or refuse them.
        usable = request.providers.iter().collect();
        note = "; no healthy provider fits, offering all".to_string();
    }
    let low = request.budget_left_usd.is_some_and(|left| left < low_budget);
    let hint = request.model_hint.as_deref();
    let cheaper = |a: &&ProviderStatus, b: &&ProviderStatus| a.blended_price().total_cmp(&b.blended_price());
    let order: Box<dyn Fn(&&ProviderStatus, &&ProviderStatus) -> Ordering> = if low {
        Box::new(cheaper)
    } else {
        match mode {
            "deep_research" => Box::new(|a, b| {
                b.max_context
                    .cmp(&a.max_context)
                    .then(b.blended_price().total_cmp(&a.blended_price()))
            }),
            "code" => Box::new(|a, b| {
                let ca = a.models.iter().any(|m| is_code(m));
                let cb = b.models.iter().any(|m| is_code(m));
                cb.cmp(&ca).then(cheaper(a, b))
            }),
            _ => Box::new(cheaper),
        }
    };
    // Healthy before half-open; the hint's providers first unless the
    // budget is low; then the mode's order (stable: ties keep the
    // configured order).
    usable.sort_by(|a, b| {
        let half = |p: &&ProviderStatus| !p.is_healthy();
        half(a)
            .cmp(&half(b))
            .then_with(|| {
                if low {
                    Ordering::Equal
                } else {
                    let serves = |p: &&ProviderStatus| hint.is_some_and(|h| p.serves(h));
                    serves(b).cmp(&serves(a))
                }
            })
            .then_with(|| order(a, b))
    });
    let why = if low {
        format!("budget left under ${low_budget}: cheapest first")
    } else {
        match mode {
            "deep_research" => "largest context, then most capable first".to_string(),
            "code" => "code models first, then cheapest".to_string(),
            _ => "cheapest first".to_string(),
        }
    };
    let mut decision = RouteDecision::new(format!("cost-aware-router, mode {mode}: {why}{note}"));
    for p in usable {
        let model = match hint {
            Some(h) if p.serves(h) => Some(h.to_string()),
            _ if mode == "code" => p
                .models
                .iter()
                .find(|m| is_code(m))
                .or_else(|| p.models.first())
                .cloned(),
            _ => p.models.first().cloned(),
        };
        if let Some(model) = model {
            decision = decision.candidate(&p.name, model);
        }
    }
    if decision.candidates.is_empty() {
        return Err("no provider is configured with a model".to_string());
    }
    if max_price > 0.0 {
        decision = decision.max_price_per_1k(max_price);
    }
    if max_context > 0 {
        decision = decision.max_context(max_context);
    }
    if max_iterations > 0 {
        decision = decision.max_iterations(max_iterations);
    }
    Ok(decision)
}
