//! The documentation's relative links and images resolve: every `](target)` in README.md,
//! ARCHITECTURE.md, CHANGELOG.md, CONTRIBUTING.md, assets/README.md and docs/*.md that is not a
//! web address or a bare anchor names a file or folder of the repository.

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
