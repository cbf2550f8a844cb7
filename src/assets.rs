//! The shipped models, embedded in the binary (the browser has no file system; the
//! desktop app falls back to them when assets/ is not beside it).

pub const MANIFEST: &str = include_str!("../assets/manifest.json");

/// Bytes of a shipped file by its manifest path.
pub fn bytes(path: &str) -> Option<&'static [u8]> {
    match path {
        "ring8-tract-1step.safetensors" => {
            Some(include_bytes!("../assets/ring8-tract-1step.safetensors"))
        }
        "ring8-tract-2step.safetensors" => {
            Some(include_bytes!("../assets/ring8-tract-2step.safetensors"))
        }
        "ring8-btd-1step.safetensors" => {
            Some(include_bytes!("../assets/ring8-btd-1step.safetensors"))
        }
        "ring8-fit.safetensors" => Some(include_bytes!("../assets/ring8-fit.safetensors")),
        "fashion-mnist-teacher.safetensors" => Some(include_bytes!(
            "../assets/fashion-mnist-teacher.safetensors"
        )),
        "fashion-mnist-tract-1step.safetensors" => Some(include_bytes!(
            "../assets/fashion-mnist-tract-1step.safetensors"
        )),
        "fashion-mnist-tract-2step.safetensors" => Some(include_bytes!(
            "../assets/fashion-mnist-tract-2step.safetensors"
        )),
        "fashion-mnist-btd-1step.safetensors" => Some(include_bytes!(
            "../assets/fashion-mnist-btd-1step.safetensors"
        )),
        // not a sampler: the feature network of `eval`'s classifier FID (native only)
        #[cfg(not(target_arch = "wasm32"))]
        "classifier-fashion-mnist.safetensors" => Some(include_bytes!(
            "../assets/classifier-fashion-mnist.safetensors"
        )),
        _ => None,
    }
}

/// The embedded manifest, with `asset:` specs that `generate::Model::load` understands.
pub fn manifest() -> Vec<crate::studio::ManifestEntry> {
    let mut v: Vec<crate::studio::ManifestEntry> =
        serde_json::from_str(MANIFEST).expect("the shipped manifest parses");
    for e in &mut v {
        e.path = format!("asset:{}", e.path);
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_manifest_entry_is_embedded_and_loads() {
        let m = super::manifest();
        assert!(m.len() >= 3);
        for e in m {
            let name = e.path.strip_prefix("asset:").unwrap();
            let b = super::bytes(name).unwrap_or_else(|| panic!("{name} not embedded"));
            let f = crate::checkpoint::ModelFile::from_bytes(name, b).unwrap();
            assert_eq!(f.meta.data, e.data);
            assert_eq!(f.meta.steps, e.steps, "{name}");
        }
    }
}
