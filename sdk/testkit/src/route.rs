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

    /// The request.
    pub fn build(self) -> RouteRequest {
        self.0
    }
}
