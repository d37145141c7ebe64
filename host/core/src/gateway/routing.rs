//! Which providers a call may go to, in order: the routing policy's
//! answer with the breakers' states (SPEC GW-2, GW-3).

use super::*;

impl Gateway {
    /// Every provider with its breaker, for the policy.
    pub(super) fn provider_status(&self) -> Vec<policy::ProviderView> {
        let now = warden_store::now_ms();
        let breakers = self.breakers.locked();
        self.providers
            .iter()
            .map(|p| policy::ProviderView {
                name: p.cfg.name.clone(),
                // Open with its backoff over reads half-open: the policy
                // keeps offering it, so that its probe can go.
                breaker: breakers
                    .get(&p.cfg.name)
                    .map_or("closed", |b| b.state_at(now).name())
                    .to_string(),
                models: p.cfg.models.clone(),
                price_input_per_1k: p.cfg.price_input_per_1k,
                price_output_per_1k: p.cfg.price_output_per_1k,
                max_context: p.cfg.max_context,
            })
            .collect()
    }

    /// Applies the policy's limits to its candidates: what is left is
    /// tried in order. Refuses the request, before any upstream, when it
    /// is over the policy's max context or every candidate is over its max
    /// price.
    pub(super) fn plan(&self, route: &Route, req: &ChatRequest, mode: &str) -> Result<Plan> {
        let needed = req
            .prompt_tokens
            .saturating_add(req.max_tokens.unwrap_or(0));
        if let Some(max) = route.max_context
            && needed > u64::from(max)
        {
            return Err(Error::invalid(format!(
                "this request needs about {needed} tokens of context ({} prompt{}), over the {max} that routing policy {} allows in mode {mode} (max_context); shorten the prompt or lower max_tokens",
                req.prompt_tokens,
                req.max_tokens
                    .map(|m| format!(" + {m} max_tokens"))
                    .unwrap_or_default(),
                route.policy
            )));
        }
        let mut candidates = Vec::new();
        let mut skipped = Vec::new();
        let mut over_price = 0;
        for c in &route.candidates {
            let Some(i) = self.providers.iter().position(|p| p.cfg.name == c.provider) else {
                skipped.push(format!("{}: no such provider", c.provider));
                continue;
            };
            let p = &self.providers[i];
            if !p.serves(&c.model) {
                skipped.push(format!(
                    "{}/{}: the provider does not list this model",
                    c.provider, c.model
                ));
                continue;
            }
            if let Some(max) = route.max_price_per_1k {
                let price = p.cfg.price_input_per_1k.max(p.cfg.price_output_per_1k);
                if price > max {
                    over_price += 1;
                    skipped.push(format!(
                        "{}/{} costs ${price} per 1k tokens, over the max price of ${max} per 1k",
                        c.provider, c.model
                    ));
                    continue;
                }
            }
            if needed > u64::from(p.cfg.max_context) {
                skipped.push(format!(
                    "{}/{} has a context of {} tokens, this request needs about {needed}",
                    c.provider, c.model, p.cfg.max_context
                ));
                continue;
            }
            candidates.push((i, c.model.clone()));
        }
        if candidates.is_empty() {
            let why = if skipped.is_empty() {
                "it named no candidate".to_string()
            } else {
                skipped.join("; ")
            };
            let message = format!(
                "refused before any upstream: routing policy {} left no candidate for model \"{}\" in mode {mode}: {why}",
                route.policy, req.model
            );
            // Over price is the request's doing (its mode, its model); a
            // policy naming unknown providers is the operator's.
            return Err(if over_price > 0 || route.candidates.is_empty() {
                Error::InvalidArgument(message)
            } else {
                Error::FailedPrecondition(message)
            });
        }
        // The reservation: the largest the call can cost on any candidate,
        // every choice at its largest completion (`max_tokens`, else the
        // provider's output cap), so that calls in flight together can
        // pass a budget by no more than the one admitted last.
        let mut reserve = Amount::default();
        for (i, _) in &candidates {
            let p = &self.providers[*i];
            let per_choice = req
                .max_tokens
                .unwrap_or_else(|| p.output_cap(req.prompt_tokens));
            let completion = per_choice.saturating_mul(req.n);
            reserve.cost_micros = reserve
                .cost_micros
                .max(p.cost_micros(req.prompt_tokens, completion));
            reserve.tokens = reserve
                .tokens
                .max(to_i64(req.prompt_tokens.saturating_add(completion)));
        }
        Ok(Plan {
            candidates,
            reserve,
        })
    }
}
