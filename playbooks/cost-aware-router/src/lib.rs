//! `cost-aware-router`: the bundled routing policy (SPEC GW-6).
//!
//! Every mode skips providers whose breaker is open (half-open ones come
//! after the healthy ones) and those whose context is too small for the
//! prompt plus `max_tokens`; a provider that offers the requested model
//! (the hint) comes first, with that model. Then, by mode:
//!
//! | mode | order | max price per 1k | max context | max iterations |
//! |---|---|---|---|---|
//! | `normal` | cheapest first | 0.01 | none | 20 |
//! | `deep_research` | largest context, then most capable (dearest) first | 0.1 | none | 50 |
//! | `code` | providers with a code model first (that model), then cheapest | 0.03 | none | 30 |
//! | `ops` | cheapest first | 0.002 | 16000 | 10 |
//!
//! When the budget left is under `low_budget_usd` (default 1.0), every
//! mode goes cheapest first, hint or not. When no healthy provider fits,
//! every provider is offered in the same order, for the host to probe or
//! to refuse with each one's reason.
//!
//! Each default is a config key: `<mode>_max_price_per_1k`,
//! `<mode>_max_context`, `<mode>_max_iterations` (0 removes the limit),
//! `code_models` (substrings that make a model a code model; default
//! `code, coder`), `low_budget_usd`. Keys are flat: a dotted key
//! (`normal.max_price_per_1k`, which TOML turns into a table) is an error
//! naming the key to write instead.

use std::cmp::Ordering;

use warden_sdk::config;
use warden_sdk::router::{MODES, ProviderStatus, RouteDecision, RouteRequest};

/// What a mode decides, after config.
struct Settings {
    /// The decision's `max_price_per_1k`; 0 for none.
    max_price: f64,
    /// The decision's `max_context`; 0 for none.
    max_context: u32,
    /// The decision's `max_iterations`; 0 for none.
    max_iterations: u32,
    /// Under this many dollars left, cheapest first whatever the mode.
    low_budget: f64,
    /// Lowercase substrings that make a model a code model (read in `code`
    /// mode only).
    code_models: Vec<String>,
}

impl Settings {
    /// The mode's defaults, overridden by the config.
    fn of(mode: &str) -> Result<Self, String> {
        check_flat_keys()?;
        let (price, context, iterations) = match mode {
            "deep_research" => (0.1, 0, 50),
            "code" => (0.03, 0, 30),
            "ops" => (0.002, 16_000, 10),
            _ => (0.01, 0, 20),
        };
        // Only `code` mode looks at models' names.
        let mut code_models = Vec::new();
        if mode == "code" {
            code_models = config::get_list("code_models")
                .iter()
                .map(|m| m.to_ascii_lowercase())
                .collect();
            if code_models.is_empty() {
                code_models = vec!["code".to_string(), "coder".to_string()];
            }
        }
        Ok(Settings {
            max_price: dollars(&format!("{mode}_max_price_per_1k"), price)?,
            max_context: config::get_parsed(&format!("{mode}_max_context"), context)?,
            max_iterations: config::get_parsed(&format!("{mode}_max_iterations"), iterations)?,
            low_budget: dollars("low_budget_usd", 1.0)?,
            code_models,
        })
    }

    fn is_code_model(&self, model: &str) -> bool {
        let model = model.to_ascii_lowercase();
        self.code_models.iter().any(|c| model.contains(c.as_str()))
    }

    fn has_code_model(&self, p: &ProviderStatus) -> bool {
        p.models.iter().any(|m| self.is_code_model(m))
    }
}

/// A dollar amount from the config: finite and not negative.
fn dollars(key: &str, default: f64) -> Result<f64, String> {
    let value: f64 = config::get_parsed(key, default)?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!(
            "invalid config value {key} = {value}: expected dollars, 0 or more"
        ))
    }
}

/// Refuses the keys an operator writes when they nest settings under a
/// mode (`normal.max_price_per_1k`): silently ignoring them would route
/// without the limit the operator meant to set.
fn check_flat_keys() -> Result<(), String> {
    for (key, _) in config::all() {
        let (head, rest) = key.split_once('.').unwrap_or((key.as_str(), ""));
        if !(key.contains('.') || MODES.contains(&head)) {
            continue;
        }
        let instead = if rest.is_empty() {
            let extra = if head == "code" { ", code_models" } else { "" };
            format!(
                "{head}_max_price_per_1k, {head}_max_context, {head}_max_iterations{extra}; in TOML, a dotted key such as {head}.max_context makes a table"
            )
        } else {
            format!("{head}_{}", rest.replace('.', "_"))
        };
        return Err(format!(
            "config key \"{key}\" is not one of cost-aware-router's (keys are flat: write {instead})"
        ));
    }
    Ok(())
}

/// How a mode orders the providers that remain.
#[derive(Clone, Copy)]
enum Order {
    Cheapest,
    Capable,
    CodeFirst,
}

impl Order {
    fn of(mode: &str, low_budget: bool) -> Self {
        match mode {
            _ if low_budget => Order::Cheapest,
            "deep_research" => Order::Capable,
            "code" => Order::CodeFirst,
            _ => Order::Cheapest,
        }
    }

    fn compare(self, s: &Settings, a: &ProviderStatus, b: &ProviderStatus) -> Ordering {
        let cheaper = a.blended_price().total_cmp(&b.blended_price());
        match self {
            Order::Cheapest => cheaper,
            Order::Capable => b.max_context.cmp(&a.max_context).then(cheaper.reverse()),
            Order::CodeFirst => s.has_code_model(b).cmp(&s.has_code_model(a)).then(cheaper),
        }
    }

    fn why(self) -> &'static str {
        match self {
            Order::Cheapest => "cheapest first",
            Order::Capable => "largest context, then most capable first",
            Order::CodeFirst => "code models first, then cheapest",
        }
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
    let s = Settings::of(mode)?;
    let low = request
        .budget_left_usd
        .is_some_and(|left| left < s.low_budget);
    let order = Order::of(mode, low);
    let hint = request.model_hint.as_deref();
    // The hint counts unless the budget is low.
    let hinted = |p: &ProviderStatus| !low && hint.is_some_and(|h| p.serves(h));

    let mut usable: Vec<&ProviderStatus> = request
        .healthy_providers()
        .filter(|p| request.fits(p))
        .collect();
    let mut note = "";
    if usable.is_empty() {
        // Nothing healthy fits: offer the rest, cheapest first, and let the
        // host probe them or refuse the request with each one's reason.
        usable = request.providers.iter().collect();
        note = "; no healthy provider fits, offering all";
    }
    // Closed before half-open, then the hint's providers, then the mode's
    // order (a stable sort: ties keep the configured order).
    usable.sort_by(|a, b| {
        (!a.is_healthy())
            .cmp(&!b.is_healthy())
            .then_with(|| hinted(b).cmp(&hinted(a)))
            .then_with(|| order.compare(&s, a, b))
    });

    let why = if low {
        format!("budget left under ${}: cheapest first", s.low_budget)
    } else {
        order.why().to_string()
    };
    let mut decision = RouteDecision::new(format!("cost-aware-router, mode {mode}: {why}{note}"));
    for p in usable {
        let model = match hint {
            Some(h) if p.serves(h) => Some(h),
            _ if mode == "code" => p
                .models
                .iter()
                .find(|m| s.is_code_model(m))
                .or_else(|| p.models.first())
                .map(String::as_str),
            _ => p.models.first().map(String::as_str),
        };
        if let Some(model) = model {
            decision = decision.candidate(&p.name, model);
        }
    }
    if decision.candidates.is_empty() {
        return Err("no provider is configured with a model".to_string());
    }
    if s.max_price > 0.0 {
        decision = decision.max_price_per_1k(s.max_price);
    }
    if s.max_context > 0 {
        decision = decision.max_context(s.max_context);
    }
    if s.max_iterations > 0 {
        decision = decision.max_iterations(s.max_iterations);
    }
    Ok(decision)
}
