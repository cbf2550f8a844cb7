//! Every shaders/*.wgsl parses and validates with naga (the version wgpu 30 uses), has
//! the `main` compute entry point Burn's SourceKernel launches, only read_write storage
//! bindings numbered 0..k, and no unused binding.

use naga::valid::{Capabilities, ValidationFlags, Validator};

fn shaders() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wgsl"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn validate(src: &str) -> Result<naga::Module, String> {
    let m = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&m)
        .map_err(|e| e.emit_to_string(src))?;
    Ok(m)
}

#[test]
fn every_shader_is_valid() {
    let all = shaders();
    assert_eq!(
        all.len(),
        9,
        "{:?}",
        all.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for (name, src) in all {
        let m = validate(&src).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let ep = m
            .entry_points
            .iter()
            .find(|e| e.name == "main")
            .unwrap_or_else(|| panic!("{name}: no `main`"));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{name}");
        assert_eq!(
            ep.workgroup_size,
            [64, 1, 1],
            "{name}: the Rust side assumes 64"
        );
        let mut b: Vec<(u32, String, String)> = m
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                g.binding.as_ref().map(|bd| {
                    (
                        bd.binding,
                        format!("{:?}", g.space),
                        g.name.clone().unwrap_or_default(),
                    )
                })
            })
            .collect();
        b.sort();
        for (i, (idx, space, var)) in b.iter().enumerate() {
            assert_eq!(*idx, i as u32, "{name}: bindings must be 0..k");
            assert!(
                space.contains("LOAD | STORE"),
                "{name}: binding {var} must be read_write"
            );
            // used by the entry point (an unused binding breaks the auto layout)
            assert!(
                src.matches(var.as_str()).count() >= 2,
                "{name}: binding {var} is never used"
            );
        }
        // the index guard against the element count is there (bounds checks are off)
        assert!(src.contains("return;"), "{name}: no bounds guard");
    }
}

#[test]
fn naga_rejects_a_broken_shader() {
    let (_, src) = shaders()
        .into_iter()
        .find(|s| s.0 == "row_axpby.wgsl")
        .unwrap();
    let bad = src.replace("a[r] * x[i]", "params.n * x[i]");
    assert!(validate(&bad).is_err());
}
