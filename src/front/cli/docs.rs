//! docs/cli.md, rendered from the clap definition: every command's `--help` (each flag, its
//! choices and default, and the command's examples). tests/cli.rs fails when the file differs
//! and rewrites it with `TRACT_UPDATE_DOCS=1`.

/// The width the help is rendered at (so the file does not depend on the terminal).
const WIDTH: usize = 100;

/// The whole of docs/cli.md.
pub fn markdown() -> String {
    let mut root = super::command().term_width(WIDTH).max_term_width(WIDTH);
    root.build();
    let mut s = String::from(
        "# The command line\n\n\
         <!-- generated from the clap definition (src/front/cli) by tests/cli.rs; rewrite it with\n\
         TRACT_UPDATE_DOCS=1 cargo test --release --locked --test cli -- cli_md -->\n\n\
         `tract-studio COMMAND --help` prints the same. Without a command the desktop app opens.\n\
         Choices (`--device`, `--param`, ...) are listed under each flag, and `tract-studio\n\
         completions bash` (or `zsh`, `fish`, ...) writes a completion script that offers them.\n\
         Every `tract-studio ...` line on this page is checked by the command line's own parser\n\
         (tests/cli.rs).\n\n\
         Defaults worth knowing: every command that computes takes `--device auto` (a hardware GPU\n\
         through wgpu when there is one, else the CPU); `sample` draws 64 images or 10,000 2-D\n\
         points and says how long it expects to take before long work; `report`, `study` and\n\
         `demo` write into `report-out/`, `study-out/` and `demo-out/` in the working directory.\n\n\
         | command | what it does |\n| --- | --- |\n",
    );
    let subs: Vec<(String, String)> = root
        .get_subcommands()
        .filter(|c| c.get_name() != "help")
        .map(|c| {
            (
                c.get_name().to_string(),
                c.get_about().map(|a| a.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    for (name, about) in &subs {
        s.push_str(&format!("| [`{name}`](#{name}) | {about} |\n"));
    }
    s.push_str("\n## tract-studio\n\n```text\n");
    s.push_str(root.render_long_help().to_string().trim_end());
    s.push_str("\n```\n");
    for (name, _) in &subs {
        let sub = root.find_subcommand_mut(name).expect("a listed subcommand");
        s.push_str(&format!("\n## {name}\n\n```text\n"));
        s.push_str(sub.render_long_help().to_string().trim_end());
        s.push_str("\n```\n");
    }
    // no trailing spaces (clap pads some lines)
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

/// Every example command line in the help of every command, as argv (quotes group words).
pub fn example_lines() -> Vec<String> {
    let mut out = vec![];
    for line in markdown().lines() {
        let l = line.trim_start();
        if l.starts_with("tract-studio ") || l == "tract-studio" {
            out.push(l.to_string());
        }
    }
    out
}

/// Split a shell-like line into words: single or double quotes group, `>` and what follows
/// (a redirection) is dropped.
pub fn words(line: &str) -> Vec<String> {
    let line = match line.find(" > ") {
        Some(i) => &line[..i],
        None => line,
    };
    let mut words = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for ch in line.chars() {
        match (ch, quote) {
            ('\'' | '"', None) => {
                quote = Some(ch);
                any = true;
            }
            (c, Some(q)) if c == q => quote = None,
            (' ', None) => {
                if any {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (c, _) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words
}
