//! The documentation stays true: its relative links and images resolve (every `](target)` in
//! README.md, ARCHITECTURE.md, CHANGELOG.md, CONTRIBUTING.md, assets/README.md and docs/*.md
//! that is not a web address or a bare anchor names a file or folder of the repository), and
//! every `tract-studio ...` command line in README.md and docs/*.md is one the command line's
//! own parser accepts.

use std::path::{Path, PathBuf};

fn targets(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].trim().to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn relative_links_and_images_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = [
        "README.md",
        "ARCHITECTURE.md",
        "CHANGELOG.md",
        "CONTRIBUTING.md",
        "assets/README.md",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let (mut checked, mut broken) = (0, vec![]);
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for t in targets(&text) {
            let t = t.split_whitespace().next().unwrap_or("").to_string();
            if t.is_empty() || t.starts_with('#') || t.contains("://") || t.starts_with("mailto:") {
                continue;
            }
            let path = t.split('#').next().unwrap_or("");
            checked += 1;
            if !f.parent().unwrap().join(path).exists() {
                broken.push(format!("{}: {t}", f.strip_prefix(root).unwrap().display()));
            }
        }
    }
    eprintln!("{checked} relative links in {} files", files.len());
    assert!(
        checked > 20,
        "only {checked} links found: is the scan broken?"
    );
    assert!(
        broken.is_empty(),
        "links that lead nowhere:\n{}",
        broken.join("\n")
    );
}

// --- every command line in the docs is one the command line accepts (issue 29 item 4)

/// What a documentation file's command lines came to.
#[derive(Default)]
struct Lines {
    /// (where, the line) of every `tract-studio ...` or `cargo run --release -- ...` line
    commands: Vec<(String, String)>,
    /// (where, the line, why) of those left out: shell syntax or placeholders
    skipped: Vec<(String, String, &'static str)>,
}

/// The argv of a command line: `tract-studio ARGS` or `cargo run --release -- ARGS` (after
/// any `VAR=value` assignments); `None` for anything else.
fn argv_of(line: &str) -> Option<&str> {
    let mut rest = line.trim();
    // leading environment assignments (`RAYON_NUM_THREADS=1 tract-studio ...`)
    while let Some((word, after)) = rest.split_once(' ') {
        let is_assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        if !is_assignment {
            break;
        }
        rest = after.trim_start();
    }
    if rest == "tract-studio" || rest.starts_with("tract-studio ") {
        Some(rest)
    } else {
        rest.strip_prefix("cargo run --release --")
            .filter(|a| a.is_empty() || a.starts_with(' '))
            .map(|_| rest)
    }
}

/// Shell syntax a plain argv split cannot stand for (a skipped line says which).
fn shell_syntax(line: &str) -> Option<&'static str> {
    [
        ("$(", "command substitution"),
        ("`", "command substitution"),
        ("|", "pipe"),
        ("&&", "command list"),
        (";", "command list"),
        ("<", "redirection"),
    ]
    .into_iter()
    .find(|(s, _)| line.contains(s))
    .map(|(_, why)| why)
}

/// Placeholders that stand for words (`tract-studio COMMAND --help`, `... --out run1 ...`).
fn placeholder(line: &str) -> Option<&'static str> {
    if line.contains("...") {
        return Some("elided arguments (...)");
    }
    let cmd = line.split_whitespace().nth(1).unwrap_or("");
    (!cmd.is_empty() && cmd.chars().all(|c| c.is_ascii_uppercase()))
        .then_some("a placeholder for the command")
}

/// The command lines of one Markdown file: in fenced code blocks (continuation lines joined,
/// shell comments dropped) and in inline code spans outside them.
fn command_lines(name: &str, text: &str, out: &mut Lines) {
    let mut fenced = false;
    let mut prose = String::new();
    let mut pending = String::new();
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        if raw.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        if !fenced {
            prose.push_str(raw);
            prose.push('\n');
            continue;
        }
        prose.push('\n');
        // a line ending in `\` continues on the next one
        let line = raw.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        let line = strip_comment(&line);
        let Some(cmd) = argv_of(line) else { continue };
        classify(at, cmd, out);
    }
    // inline code spans in the prose, which may run over a line break
    let mut rest = prose.as_str();
    let mut line_no = 1;
    while let Some(open) = rest.find('`') {
        line_no += rest[..open].matches('\n').count();
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let span = after[..close].replace('\n', " ");
        if let Some(cmd) = argv_of(&span) {
            classify(format!("{name}:{line_no}"), cmd, out);
        }
        line_no += after[..close].matches('\n').count();
        rest = &after[close + 1..];
    }
}

/// A line without its shell comment (a `#` that starts a word, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if prev.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    line
}

fn classify(at: String, cmd: &str, out: &mut Lines) {
    match shell_syntax(cmd).or_else(|| placeholder(cmd)) {
        Some(why) => out.skipped.push((at, cmd.to_string(), why)),
        None => out.commands.push((at, cmd.to_string())),
    }
}

/// argv for clap: the words (shell quoting), a `> FILE` redirection dropped, and `cargo run
/// --release --` standing for the binary.
fn argv(cmd: &str) -> Option<Vec<String>> {
    let mut words = shlex::split(cmd)?;
    if let Some(i) = words.iter().position(|w| w == ">" || w == ">>") {
        words.truncate(i);
    }
    if words.starts_with(&[
        "cargo".into(),
        "run".into(),
        "--release".into(),
        "--".into(),
    ]) {
        words.splice(0..4, ["tract-studio".to_string()]);
    }
    Some(words)
}

/// Every `tract-studio ...` (and `cargo run --release -- ...`) line in README.md and
/// docs/*.md, in code blocks and inline code, is accepted by the command line's own parser
/// (clap's `try_parse_from`; nothing is run). Lines with shell syntax an argv cannot stand for
/// (`$(...)`, pipes) or with placeholders (`COMMAND`, `...`) are counted and listed, not parsed.
#[test]
fn every_command_line_in_the_docs_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut lines = Lines::default();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.strip_prefix(root).unwrap().display().to_string();
        command_lines(&name, &text, &mut lines);
    }
    let cli = tract_studio::front::cli::command();
    let (mut failed, mut names) = (vec![], 0);
    for (at, cmd) in &lines.commands {
        let Some(args) = argv(cmd) else {
            failed.push(format!("{at}: {cmd}\n  unbalanced quotes"));
            continue;
        };
        if let Err(e) = tract_studio::front::cli::parses(&args) {
            // prose that names a command (`tract-studio gallery` draws ...) only needs the name
            if let [_, name] = &args[..]
                && cli.find_subcommand(name).is_some()
            {
                names += 1;
                continue;
            }
            let first = e.lines().next().unwrap_or("").to_string();
            failed.push(format!("{at}: {cmd}\n  {first}"));
        }
    }
    eprintln!(
        "{} command lines checked in {} files ({names} of them only name a command), {} skipped:",
        lines.commands.len(),
        files.len(),
        lines.skipped.len()
    );
    for (at, cmd, why) in &lines.skipped {
        eprintln!("  {at}: {cmd} ({why})");
    }
    assert!(
        lines.commands.len() >= 60,
        "only {} command lines found: is the extraction broken?",
        lines.commands.len()
    );
    assert!(
        failed.is_empty(),
        "command lines in the docs that the command line refuses:\n{}",
        failed.join("\n")
    );
}
