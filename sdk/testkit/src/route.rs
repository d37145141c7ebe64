//! Building a [`RouteRequest`] for a routing policy under test.

use crate::{ProviderStatus, RouteRequest};

/// A provider with one model, closed breaker, free, 128k context; change
/// it with the builder methods.
pub fn provider(name: &str, model: &str) -> ProviderBuilder {
    ProviderBuilder(ProviderStatus {
        name: name.to_string(),
        breaker: "closed".to_string(),
        models: vec![model.to_string()],
        price_input_per_1k: 0.0,
        price_output_per_1k: 0.0,
        max_context: 128_000,
    })
}

/// A provider being built.
#[derive(Clone, Debug)]
pub struct ProviderBuilder(ProviderStatus);

impl ProviderBuilder {
    /// Adds a model.
    pub fn model(mut self, model: &str) -> Self {
        self.0.models.push(model.to_string());
        self
    }

    /// Dollars per 1k input and output tokens.
    pub fn price(mut self, input: f64, output: f64) -> Self {
        self.0.price_input_per_1k = input;
        self.0.price_output_per_1k = output;
        self
    }

    /// Its context.
    pub fn max_context(mut self, tokens: u32) -> Self {
        self.0.max_context = tokens;
        self
    }

    /// Its breaker: `closed`, `open` or `half-open`.
    pub fn breaker(mut self, state: &str) -> Self {
        self.0.breaker = state.to_string();
        self
    }
}

/// A request in `mode` of workspace `test`, 100 prompt tokens, no
/// providers yet.
pub fn route_request(mode: &str) -> RouteRequestBuilder {
    RouteRequestBuilder(RouteRequest {
        workspace: "test".to_string(),
        mode: mode.to_string(),
        model_hint: None,
        prompt_tokens: 100,
        max_output_tokens: None,
        task_id: None,
        stage: None,
        budget_left_usd: None,
        budget_left_tokens: None,
        providers: Vec::new(),
    })
}

/// A request being built.
#[derive(Clone, Debug)]
pub struct RouteRequestBuilder(RouteRequest);

impl RouteRequestBuilder {
    /// Adds a provider (in order).
    pub fn provider(mut self, p: ProviderBuilder) -> Self {
        self.0.providers.push(p.0);
        self
    }

    /// The model the client asked for.
    pub fn hint(mut self, model: &str) -> Self {
        self.0.model_hint = Some(model.to_string());
        self
    }

    /// Estimated prompt tokens.
    pub fn prompt_tokens(mut self, tokens: u32) -> Self {
        self.0.prompt_tokens = tokens;
        self
    }

    /// The request's `max_tokens`.
    pub fn max_output_tokens(mut self, tokens: u32) -> Self {
        self.0.max_output_tokens = Some(tokens);
        self
    }

    /// The task and stage.
    pub fn task(mut self, id: &str, stage: &str) -> Self {
        self.0.task_id = Some(id.to_string());
        self.0.stage = Some(stage.to_string());
        self
    }

    /// Dollars left in the tightest budget.
    pub fn budget_left_usd(mut self, dollars: f64) -> Self {
        self.0.budget_left_usd = Some(dollars);
        self
    }

    /// Tokens left in the tightest budget.
    pub fn budget_left_tokens(mut self, tokens: u64) -> Self {
        self.0.budget_left_tokens = Some(tokens);
        self
    }

    /// The request.
    pub fn build(self) -> RouteRequest {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_fill_in_every_field() {
        let r = route_request("code")
            .hint("m2")
            .prompt_tokens(900)
            .max_output_tokens(100)
            .task("t1", "implement")
            .budget_left_usd(2.5)
            .budget_left_tokens(40_000)
            .provider(provider("a", "m1"))
            .provider(
                provider("b", "m2")
                    .model("m3")
                    .price(0.001, 0.002)
                    .max_context(4_096)
                    .breaker("half-open"),
            )
            .build();
        assert_eq!((r.workspace.as_str(), r.mode.as_str()), ("test", "code"));
        assert_eq!(r.model_hint.as_deref(), Some("m2"));
        assert_eq!((r.prompt_tokens, r.max_output_tokens), (900, Some(100)));
        assert_eq!(
            (r.task_id.as_deref(), r.stage.as_deref()),
            (Some("t1"), Some("implement"))
        );
        assert_eq!(
            (r.budget_left_usd, r.budget_left_tokens),
            (Some(2.5), Some(40_000))
        );
        let names: Vec<&str> = r.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = &r.providers[0];
        assert_eq!(
            (a.breaker.as_str(), a.max_context, a.price_input_per_1k),
            ("closed", 128_000, 0.0)
        );
        let b = &r.providers[1];
        assert_eq!(b.models, ["m2", "m3"]);
        assert_eq!(
            (b.price_input_per_1k, b.price_output_per_1k, b.max_context),
            (0.001, 0.002, 4_096)
        );
        assert_eq!(b.breaker, "half-open");
    }

    #[test]
    fn a_bare_request_has_no_hint_task_or_budget() {
        let r = route_request("normal").build();
        assert_eq!(r.prompt_tokens, 100);
        assert!(r.model_hint.is_none() && r.max_output_tokens.is_none());
        assert!(r.task_id.is_none() && r.stage.is_none());
        assert!(r.budget_left_usd.is_none() && r.budget_left_tokens.is_none());
        assert!(r.providers.is_empty());
    }
}
