//! The attribute macros of `warden-sdk`: `#[playbook]`, `#[gate]` and
//! `#[router]`. Use them through that crate.
//!
//! Each macro checks the function's signature and the declared metadata at
//! compile time, emits the `export!` glue of its WIT world, and embeds the
//! metadata as the `warden:plugin-meta` custom section (SPEC PL-4). Mistakes
//! are reported as compile errors on the offending tokens, never as panics.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, ItemFn, Lit, LitStr, ReturnType, parse_macro_input};
use warden_meta::{Limits, PluginKind, PluginMeta};

/// Declares a playbook.
///
/// ```ignore
/// #[warden_sdk::playbook(capabilities = ["health:read", "tasks:read"], steps = 10)]
/// fn run(ctx: &warden_sdk::Context) -> Result<warden_sdk::Report, warden_sdk::HostError> { .. }
/// ```
///
/// Arguments, all optional: `name` and `version` (default: the crate's
/// `name` and `version` from Cargo.toml), `description` (default: the
/// crate's description), `capabilities = [..]`, the limits `deadline_ms`,
/// `memory_mib`, `fuel`, `steps`, `output_kib`, and the flags `idempotent`
/// and `concurrent`.
#[proc_macro_attribute]
pub fn playbook(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    match expand(PluginKind::Playbook, attr.into(), &func) {
        Ok(ts) => ts.into(),
        Err(e) => {
            // Keep the function so that its body still gets checked and
            // the user sees every error at once.
            let err = e.to_compile_error();
            quote!(#err #func).into()
        }
    }
}

/// Declares a quality gate.
///
/// ```ignore
/// #[warden_sdk::gate(capabilities = ["kv"], deadline_ms = 2000)]
/// fn evaluate(submission: &warden_sdk::gate::Submission) -> Result<warden_sdk::gate::Verdict, String> { .. }
/// ```
///
/// Arguments, all optional: `name` and `version` (default: the crate's
/// `name` and `version` from Cargo.toml), `description` (default: the
/// crate's description), `capabilities = [..]` (a gate may request only
/// `kv`: the quality-gate world offers `log`, `config` and `kv`), and the
/// limits `deadline_ms`, `memory_mib`, `fuel` and `output_kib`.
#[proc_macro_attribute]
pub fn gate(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    match expand(PluginKind::QualityGate, attr.into(), &func) {
        Ok(ts) => ts.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func).into()
        }
    }
}

/// Declares a routing policy.
///
/// ```ignore
/// #[warden_sdk::router(deadline_ms = 50)]
/// fn route(request: &warden_sdk::router::RouteRequest) -> Result<warden_sdk::router::RouteDecision, String> { .. }
/// ```
///
/// Arguments, all optional: `name` and `version` (default: the crate's
/// `name` and `version` from Cargo.toml), `description` (default: the
/// crate's description), and the limits `deadline_ms`, `memory_mib`, `fuel`
/// and `output_kib`. A routing policy requests no capabilities: its world
/// offers `log` and `config` only.
#[proc_macro_attribute]
pub fn router(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = parse_macro_input!(item as ItemFn);
    match expand(PluginKind::RoutingPolicy, attr.into(), &func) {
        Ok(ts) => ts.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func).into()
        }
    }
}

/// The attribute's arguments, before validation.
struct Args {
    name: Option<LitStr>,
    version: Option<LitStr>,
    description: Option<LitStr>,
    capabilities: Vec<LitStr>,
    limits: Limits,
    idempotent: bool,
    concurrent: bool,
    /// Arguments that only make sense for a playbook, with their spans.
    playbook_only: Vec<(&'static str, Span)>,
}

fn parse_args(attr: proc_macro2::TokenStream) -> syn::Result<Args> {
    let mut args = Args {
        name: None,
        version: None,
        description: None,
        capabilities: Vec::new(),
        limits: Limits::default(),
        idempotent: false,
        concurrent: false,
        playbook_only: Vec::new(),
    };
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "name" => args.name = Some(meta.value()?.parse()?),
            "version" => args.version = Some(meta.value()?.parse()?),
            "description" => args.description = Some(meta.value()?.parse()?),
            "capabilities" => {
                let array: ExprArray = meta.value()?.parse()?;
                for elem in array.elems {
                    match elem {
                        Expr::Lit(ExprLit {
                            lit: Lit::Str(s), ..
                        }) => args.capabilities.push(s),
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "capabilities are string literals, e.g. \"tasks:read\"",
                            ));
                        }
                    }
                }
            }
            "deadline_ms" | "memory_mib" | "fuel" | "steps" | "output_kib" => {
                let lit: syn::LitInt = meta.value()?.parse()?;
                let value: u64 = lit.base10_parse()?;
                if key == "steps" {
                    args.playbook_only.push(("steps", meta.path.span()));
                }
                let slot = match key.as_str() {
                    "deadline_ms" => &mut args.limits.deadline_ms,
                    "memory_mib" => &mut args.limits.memory_mib,
                    "fuel" => &mut args.limits.fuel,
                    "steps" => &mut args.limits.steps,
                    _ => &mut args.limits.output_kib,
                };
                *slot = Some(value);
            }
            "idempotent" => {
                args.idempotent = true;
                args.playbook_only.push(("idempotent", meta.path.span()));
            }
            "concurrent" => {
                args.concurrent = true;
                args.playbook_only.push(("concurrent", meta.path.span()));
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown argument `{key}` (expected name, version, description, capabilities, \
                     deadline_ms, memory_mib, fuel, steps, output_kib, idempotent or concurrent)"
                )));
            }
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(args)
}

/// Builds the metadata, pointing any error at the token that caused it.
fn build_meta(kind: PluginKind, args: &Args) -> syn::Result<PluginMeta> {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let name = args
        .name
        .as_ref()
        .map_or_else(|| env("CARGO_PKG_NAME"), LitStr::value);
    let version = args
        .version
        .as_ref()
        .map_or_else(|| env("CARGO_PKG_VERSION"), LitStr::value);
    let description = args
        .description
        .as_ref()
        .map_or_else(|| env("CARGO_PKG_DESCRIPTION"), LitStr::value);

    for cap in &args.capabilities {
        let parsed = cap
            .value()
            .parse::<warden_meta::Capability>()
            .map_err(|e| syn::Error::new(cap.span(), e.to_string()))?;
        if kind == PluginKind::RoutingPolicy {
            return Err(syn::Error::new(
                cap.span(),
                format!(
                    "capability \"{parsed}\" is not available to a routing policy (its world offers log and config, which need none)"
                ),
            ));
        }
        if kind == PluginKind::QualityGate && parsed != warden_meta::Capability::Kv {
            return Err(syn::Error::new(
                cap.span(),
                format!(
                    "capability \"{parsed}\" is not available to a quality gate (its world offers log, config and kv: request \"kv\" or nothing)"
                ),
            ));
        }
    }
    if kind != PluginKind::Playbook
        && let Some((arg, span)) = args.playbook_only.first()
    {
        return Err(syn::Error::new(
            *span,
            format!("`{arg}` applies to playbooks only"),
        ));
    }
    PluginMeta::builder(&name, &version, kind)
        .description(&description)
        .capabilities(args.capabilities.iter().map(LitStr::value))
        .limits(args.limits.clone())
        .idempotent(args.idempotent)
        .concurrent(args.concurrent)
        .build()
        .map_err(|e| {
            let span = match e {
                warden_meta::Error::InvalidName(_) => args.name.as_ref().map(LitStr::span),
                warden_meta::Error::InvalidVersion(_) => args.version.as_ref().map(LitStr::span),
                _ => None,
            };
            syn::Error::new(span.unwrap_or_else(Span::call_site), e.to_string())
        })
}

/// Checks `fn name(ctx: &T) -> R` without generics, async or self.
fn check_signature(func: &ItemFn, expected: &str) -> syn::Result<()> {
    let sig = &func.sig;
    let bad = |tokens: &dyn quote::ToTokens, what: &str| {
        Err(syn::Error::new_spanned(
            tokens,
            format!("{what}; expected `{expected}`"),
        ))
    };
    if let Some(a) = &sig.asyncness {
        return bad(a, "a plugin function cannot be async");
    }
    if !sig.generics.params.is_empty() {
        return bad(&sig.generics, "a plugin function cannot be generic");
    }
    if sig.inputs.len() != 1 {
        return bad(&sig.inputs, "a plugin function takes exactly one argument");
    }
    match sig.inputs.first() {
        Some(syn::FnArg::Typed(arg)) if matches!(*arg.ty, syn::Type::Reference(_)) => {}
        Some(other) => return bad(other, "the argument must be a shared reference"),
        None => return bad(&sig.inputs, "missing argument"),
    }
    if let ReturnType::Default = sig.output {
        return bad(&sig.ident, "a plugin function returns a Result");
    }
    Ok(())
}

fn expand(
    kind: PluginKind,
    attr: proc_macro2::TokenStream,
    func: &ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = parse_args(attr)?;
    let expected = match kind {
        PluginKind::Playbook => {
            "fn run(ctx: &warden_sdk::Context) -> Result<warden_sdk::Report, impl Display>"
        }
        PluginKind::QualityGate => {
            "fn evaluate(submission: &warden_sdk::gate::Submission) -> Result<warden_sdk::gate::Verdict, impl Display>"
        }
        PluginKind::RoutingPolicy => {
            "fn route(request: &warden_sdk::router::RouteRequest) -> Result<warden_sdk::router::RouteDecision, impl Display>"
        }
    };
    check_signature(func, expected)?;
    let meta = build_meta(kind, &args)?;
    let bytes = meta.encode();
    let len = bytes.len();
    let literal = syn::LitByteStr::new(&bytes, Span::call_site());
    let fn_name = &func.sig.ident;

    let export = match kind {
        PluginKind::Playbook => quote! {
            struct __WardenPlaybook;

            impl ::warden_sdk::wit::playbook::Guest for __WardenPlaybook {
                fn run(
                    ctx: ::warden_sdk::wit::playbook::RunContext,
                    input: ::std::string::String,
                ) -> ::std::result::Result<::warden_sdk::wit::playbook::Report, ::std::string::String> {
                    ::warden_sdk::__private::run_playbook(ctx, input, #fn_name)
                }
            }

            ::warden_sdk::wit::playbook::export_playbook!(
                __WardenPlaybook with_types_in ::warden_sdk::wit::playbook
            );
        },
        PluginKind::RoutingPolicy => quote! {
            struct __WardenRouter;

            impl ::warden_sdk::wit::router::Guest for __WardenRouter {
                fn route(
                    request: ::warden_sdk::wit::router::RouteRequest,
                ) -> ::std::result::Result<::warden_sdk::wit::router::RouteDecision, ::std::string::String> {
                    ::warden_sdk::__private::route_request(request, #fn_name)
                }
            }

            ::warden_sdk::wit::router::export_router!(
                __WardenRouter with_types_in ::warden_sdk::wit::router
            );
        },
        PluginKind::QualityGate => quote! {
            struct __WardenGate;

            impl ::warden_sdk::wit::gate::Guest for __WardenGate {
                fn evaluate(
                    submission: ::warden_sdk::wit::gate::Submission,
                ) -> ::std::result::Result<::warden_sdk::wit::gate::Verdict, ::std::string::String> {
                    ::warden_sdk::__private::evaluate_gate(submission, #fn_name)
                }
            }

            ::warden_sdk::wit::gate::export_gate!(
                __WardenGate with_types_in ::warden_sdk::wit::gate
            );
        },
    };

    Ok(quote! {
        #func

        const _: () = {
            #export

            #[unsafe(link_section = "warden:plugin-meta")]
            #[used]
            static __WARDEN_PLUGIN_META: [u8; #len] = *#literal;
        };
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_kind(kind: PluginKind, attr: &str, item: &str) -> Result<String, String> {
        let attr: proc_macro2::TokenStream = attr.parse().unwrap();
        let func: ItemFn = syn::parse_str(item).unwrap();
        expand(kind, attr, &func)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    fn expand_str(attr: &str, item: &str) -> Result<String, String> {
        expand_kind(PluginKind::Playbook, attr, item)
    }

    fn expand_gate(attr: &str, item: &str) -> Result<String, String> {
        expand_kind(PluginKind::QualityGate, attr, item)
    }

    const GOOD_GATE: &str = "fn evaluate(submission: &warden_sdk::gate::Submission) -> Result<warden_sdk::gate::Verdict, String> { todo!() }";

    #[test]
    fn a_good_gate_exports_evaluate_and_embeds_its_metadata() {
        let out = expand_gate(
            r#"name = "size-check", version = "0.2.0", description = "d", capabilities = ["kv"], deadline_ms = 1500"#,
            GOOD_GATE,
        )
        .unwrap();
        assert!(
            out.contains("link_section = \"warden:plugin-meta\""),
            "{out}"
        );
        assert!(out.contains("export_gate"), "{out}");
        assert!(out.contains("evaluate_gate"), "{out}");
        // A gate never exports the playbook world.
        assert!(!out.contains("export_playbook"), "{out}");
        assert!(!out.contains("run_playbook"), "{out}");
        let meta = PluginMeta::builder("size-check", "0.2.0", PluginKind::QualityGate)
            .description("d")
            .capabilities(["kv"])
            .limits(Limits {
                deadline_ms: Some(1500),
                ..Limits::default()
            })
            .build()
            .unwrap();
        let json = String::from_utf8(meta.encode()).unwrap();
        assert!(json.contains(r#""kind":"quality-gate""#), "{json}");
        let literal = syn::LitByteStr::new(json.as_bytes(), Span::call_site());
        assert!(out.contains(&quote!(#literal).to_string()), "{out}");

        // And a playbook never exports the gate world.
        let out = expand_str(r#"name = "probe", version = "1.0.0""#, GOOD).unwrap();
        assert!(!out.contains("export_gate"), "{out}");
    }

    #[test]
    fn gate_mistakes_are_compile_errors() {
        let err = expand_gate(
            r#"name = "g", version = "1.0.0", capabilities = ["tasks:write"]"#,
            GOOD_GATE,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "capability \"tasks:write\" is not available to a quality gate (its world offers log, config and kv: request \"kv\" or nothing)"
        );
        for arg in ["steps = 3", "idempotent", "concurrent"] {
            let err = expand_gate(
                &format!(r#"name = "g", version = "1.0.0", {arg}"#),
                GOOD_GATE,
            )
            .unwrap_err();
            let word = arg.split(' ').next().unwrap();
            assert_eq!(err, format!("`{word}` applies to playbooks only"));
        }
        let err = expand_gate(
            r#"name = "g", version = "1.0.0""#,
            "fn evaluate(s: Submission) -> Result<Verdict, String> { todo!() }",
        )
        .unwrap_err();
        assert!(err.contains("must be a shared reference"), "{err}");
        assert!(
            err.contains("expected `fn evaluate(submission: &warden_sdk::gate::Submission)"),
            "{err}"
        );
        let err = expand_gate(
            r#"name = "g", version = "1.0.0""#,
            "async fn evaluate(s: &Submission) -> Result<Verdict, String> { todo!() }",
        )
        .unwrap_err();
        assert!(err.contains("cannot be async"), "{err}");
    }

    const GOOD_ROUTER: &str = "fn route(request: &warden_sdk::router::RouteRequest) -> Result<warden_sdk::router::RouteDecision, String> { todo!() }";

    fn expand_router(attr: &str, item: &str) -> Result<String, String> {
        expand_kind(PluginKind::RoutingPolicy, attr, item)
    }

    #[test]
    fn a_good_router_exports_route_and_embeds_its_metadata() {
        let out = expand_router(
            r#"name = "ordered-router", version = "2.0.0", description = "d", deadline_ms = 50, memory_mib = 8"#,
            GOOD_ROUTER,
        )
        .unwrap();
        assert!(
            out.contains("link_section = \"warden:plugin-meta\""),
            "{out}"
        );
        assert!(out.contains("export_router"), "{out}");
        assert!(out.contains("route_request"), "{out}");
        // A router never exports another world.
        assert!(
            !out.contains("export_gate") && !out.contains("export_playbook"),
            "{out}"
        );
        let meta = PluginMeta::builder("ordered-router", "2.0.0", PluginKind::RoutingPolicy)
            .description("d")
            .limits(Limits {
                deadline_ms: Some(50),
                memory_mib: Some(8),
                ..Limits::default()
            })
            .build()
            .unwrap();
        let json = String::from_utf8(meta.encode()).unwrap();
        assert!(json.contains(r#""kind":"routing-policy""#), "{json}");
        let literal = syn::LitByteStr::new(json.as_bytes(), Span::call_site());
        assert!(out.contains(&quote!(#literal).to_string()), "{out}");

        // An empty capability list is no request at all, so it is fine.
        assert!(expand_router(r#"capabilities = []"#, GOOD_ROUTER).is_ok());
        // And neither a playbook nor a gate exports the router world.
        let out = expand_str(r#"name = "probe", version = "1.0.0""#, GOOD).unwrap();
        assert!(!out.contains("export_router"), "{out}");
        let out = expand_gate(r#"name = "g", version = "1.0.0""#, GOOD_GATE).unwrap();
        assert!(!out.contains("export_router"), "{out}");
    }

    #[test]
    fn router_mistakes_are_compile_errors() {
        for cap in ["kv", "health:read", "tasks:write"] {
            let err = expand_router(
                &format!(r#"name = "r", version = "1.0.0", capabilities = ["{cap}"]"#),
                GOOD_ROUTER,
            )
            .unwrap_err();
            assert_eq!(
                err,
                format!(
                    "capability \"{cap}\" is not available to a routing policy (its world offers log and config, which need none)"
                )
            );
        }
        for arg in ["steps = 3", "idempotent", "concurrent"] {
            let err = expand_router(arg, GOOD_ROUTER).unwrap_err();
            let word = arg.split(' ').next().unwrap();
            assert_eq!(err, format!("`{word}` applies to playbooks only"));
        }
        let err = expand_router(r#"version = "2""#, GOOD_ROUTER).unwrap_err();
        assert!(err.starts_with("invalid plugin version \"2\""), "{err}");
        let cases = [
            (
                "fn route(r: RouteRequest) -> Result<RouteDecision, String> { todo!() }",
                "must be a shared reference",
            ),
            (
                "async fn route(r: &RouteRequest) -> Result<RouteDecision, String> { todo!() }",
                "cannot be async",
            ),
            ("fn route(r: &RouteRequest) { }", "returns a Result"),
            (
                "fn route() -> Result<RouteDecision, String> { todo!() }",
                "takes exactly one argument",
            ),
        ];
        for (item, expected) in cases {
            let err = expand_router("", item).unwrap_err();
            assert!(err.contains(expected), "{item}: {err}");
            assert!(
                err.contains("expected `fn route(request: &warden_sdk::router::RouteRequest)"),
                "{err}"
            );
        }
    }

    const GOOD: &str =
        "fn run(ctx: &warden_sdk::Context) -> Result<warden_sdk::Report, String> { todo!() }";

    #[test]
    fn a_good_playbook_embeds_its_metadata() {
        let out = expand_str(r#"name = "probe", version = "1.2.3", description = "d", capabilities = ["tasks:read"], steps = 5, idempotent"#, GOOD).unwrap();
        assert!(
            out.contains("link_section = \"warden:plugin-meta\""),
            "{out}"
        );
        assert!(out.contains("export_playbook"), "{out}");
        let meta = PluginMeta::builder("probe", "1.2.3", PluginKind::Playbook)
            .description("d")
            .capabilities(["tasks:read"])
            .limits(Limits {
                steps: Some(5),
                ..Limits::default()
            })
            .idempotent(true)
            .build()
            .unwrap();
        let json = String::from_utf8(meta.encode()).unwrap();
        let literal = syn::LitByteStr::new(json.as_bytes(), Span::call_site());
        assert!(out.contains(&quote!(#literal).to_string()), "{out}");
    }

    #[test]
    fn bad_signatures_are_compile_errors() {
        let cases = [
            (
                "async fn run(ctx: &Context) -> Result<Report, String> { todo!() }",
                "cannot be async",
            ),
            (
                "fn run(a: &Context, b: u32) -> Result<Report, String> { todo!() }",
                "takes exactly one argument",
            ),
            (
                "fn run(ctx: Context) -> Result<Report, String> { todo!() }",
                "must be a shared reference",
            ),
            ("fn run(ctx: &Context) { }", "returns a Result"),
            (
                "fn run<T>(ctx: &T) -> Result<Report, String> { todo!() }",
                "cannot be generic",
            ),
        ];
        for (item, expected) in cases {
            let err = expand_str(r#"name = "probe", version = "1.0.0""#, item).unwrap_err();
            assert!(err.contains(expected), "{item}: {err}");
            assert!(
                err.contains("expected `fn run(ctx: &warden_sdk::Context)"),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_metadata_is_a_compile_error() {
        let err = expand_str(
            r#"name = "probe", version = "1.0.0", capabilities = ["tasks:wirte"]"#,
            GOOD,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "unknown capability \"tasks:wirte\" (did you mean \"tasks:write\"?)"
        );
        let err = expand_str(r#"name = "Probe!", version = "1.0.0""#, GOOD).unwrap_err();
        assert!(err.starts_with("invalid plugin name \"Probe!\""), "{err}");
        let err = expand_str(r#"name = "probe", version = "one""#, GOOD).unwrap_err();
        assert!(err.starts_with("invalid plugin version \"one\""), "{err}");
        let err = expand_str(r#"colour = "blue""#, GOOD).unwrap_err();
        assert!(err.starts_with("unknown argument `colour`"), "{err}");
        let err =
            expand_str(r#"name = "probe", version = "1.0.0", memory_mib = 0"#, GOOD).unwrap_err();
        assert_eq!(err, "invalid limit memory_mib = 0: must be at least 1");
    }
}
