wit_bindgen::generate!({ world: "playbook", path: "../../../wit" });

struct Bare;

impl Guest for Bare {
    fn run(_ctx: RunContext, _input: String) -> Result<Report, String> {
        Ok(Report {
            summary: "no metadata".into(),
            findings: Vec::new(),
            manual_actions: Vec::new(),
        })
    }
}

export!(Bare);
