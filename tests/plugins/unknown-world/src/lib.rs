wit_bindgen::generate!({
    inline: "
        package test:other;
        world other {
            export greet: func(name: string) -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Other);

// Metadata that lies: it claims the playbook world.
#[unsafe(link_section = "warden:plugin-meta")]
#[used]
static META: [u8; 92] = *br#"{"schema":1,"name":"unknown-world","version":"1.0.0","kind":"playbook","description":"liar"}"#;
