//! The shipped models. The native binary embeds them (the desktop app falls back to them
//! when assets/ is not beside it; the CLI's `gallery` and `eval` use them). The browser build
//! embeds nothing: the page fetches manifest.json and each model file (src/front/web.rs) and
//! hands the bytes to `insert`; until a file arrives (or when its fetch failed) `bytes` has
//! none.

/// Shipped models listed in assets/manifest.json.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct ManifestEntry {
    pub name: String,
    pub path: String,
    pub data: String,
    pub kind: String,
    pub steps: usize,
}

/// Read a manifest; paths in it are relative to its directory.
pub fn read_manifest(path: &std::path::Path) -> crate::Result<Vec<ManifestEntry>> {
    let text = String::from_utf8(crate::engine::error::read_file(path)?)
        .map_err(|_| crate::Error::file(path, "not UTF-8"))?;
    let mut v: Vec<ManifestEntry> = serde_json::from_str(&text)
        .map_err(|e| crate::Error::file(path, format!("malformed manifest ({e}); expected [{{\"name\", \"path\", \"data\", \"kind\", \"steps\"}}]")))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    for e in &mut v {
        e.path = dir.join(&e.path).display().to_string();
    }
    Ok(v)
}

#[cfg(not(target_arch = "wasm32"))]
pub const MANIFEST: &str = include_str!("../../assets/manifest.json");

/// Bytes of a shipped file by its manifest path.
#[cfg(not(target_arch = "wasm32"))]
pub fn bytes(path: &str) -> Option<&'static [u8]> {
    match path {
        "ring8-tract-1step.safetensors" => {
            Some(include_bytes!("../../assets/ring8-tract-1step.safetensors"))
        }
        "ring8-tract-2step.safetensors" => {
            Some(include_bytes!("../../assets/ring8-tract-2step.safetensors"))
        }
        "ring8-btd-1step.safetensors" => {
            Some(include_bytes!("../../assets/ring8-btd-1step.safetensors"))
        }
        "ring8-fit.safetensors" => Some(include_bytes!("../../assets/ring8-fit.safetensors")),
        "fashion-mnist-teacher.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-teacher.safetensors"
        )),
        "fashion-mnist-tract-1step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-tract-1step.safetensors"
        )),
        "fashion-mnist-tract-2step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-tract-2step.safetensors"
        )),
        "fashion-mnist-btd-1step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-btd-1step.safetensors"
        )),
        // a teacher trained by diffusers' own recipe (not in the manifest: the galleries would
        // give it a 1000-step row); `export` turns it back into a DDIMPipeline folder
        "fashion-mnist-diffusers-teacher.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-teacher.safetensors"
        )),
        // not a sampler: the feature network of `eval`'s classifier FID
        "classifier-fashion-mnist.safetensors" => Some(include_bytes!(
            "../../assets/classifier-fashion-mnist.safetensors"
        )),
        _ => None,
    }
}

/// The embedded manifest, with `asset:` specs that `generate::Model::load` understands.
#[cfg(not(target_arch = "wasm32"))]
pub fn manifest() -> Vec<ManifestEntry> {
    let v: Vec<ManifestEntry> =
        serde_json::from_str(MANIFEST).expect("the shipped manifest parses");
    with_asset_specs(v)
}

fn with_asset_specs(mut v: Vec<ManifestEntry>) -> Vec<ManifestEntry> {
    for e in &mut v {
        e.path = format!("asset:{}", e.path);
    }
    v
}

/// Where a fetched file stands (browser build).
#[derive(Clone, Debug, PartialEq)]
pub enum FileState {
    Pending,
    Ready,
    Failed(String),
}

#[cfg(target_arch = "wasm32")]
mod fetched {
    use super::{FileState, ManifestEntry};
    use std::sync::Mutex;

    pub struct Store {
        pub manifest: Vec<ManifestEntry>,
        pub files: Vec<(String, FileState, &'static [u8])>,
    }

    // one thread in the browser: the lock is never contended
    pub static STORE: Mutex<Store> = Mutex::new(Store {
        manifest: vec![],
        files: vec![],
    });
}

/// The fetched manifest (`asset:` specs); every file in it starts as pending.
#[cfg(target_arch = "wasm32")]
pub fn set_manifest(text: &str) -> crate::Result<Vec<ManifestEntry>> {
    let v: Vec<ManifestEntry> = serde_json::from_str(text).map_err(|e| {
        crate::Error::input(format!(
            "manifest.json is malformed ({e}); expected [{{\"name\", \"path\", \"data\", \"kind\", \"steps\"}}]"
        ))
    })?;
    let mut s = fetched::STORE.lock().expect("lock");
    s.files = v
        .iter()
        .map(|e| (e.path.clone(), FileState::Pending, &[][..]))
        .collect();
    s.manifest = with_asset_specs(v);
    Ok(s.manifest.clone())
}

/// The fetched manifest (empty until it arrives).
#[cfg(target_arch = "wasm32")]
pub fn manifest() -> Vec<ManifestEntry> {
    fetched::STORE.lock().expect("lock").manifest.clone()
}

/// A fetched file arrived (`Ok`, its bytes live as long as the page) or failed (`Err`).
#[cfg(target_arch = "wasm32")]
pub fn insert(name: &str, got: std::result::Result<Vec<u8>, String>) {
    let mut s = fetched::STORE.lock().expect("lock");
    let (state, b): (FileState, &'static [u8]) = match got {
        Ok(b) => (FileState::Ready, Box::leak(b.into_boxed_slice())),
        Err(e) => (FileState::Failed(e), &[]),
    };
    match s.files.iter_mut().find(|f| f.0 == name) {
        Some(f) => {
            f.1 = state;
            f.2 = b;
        }
        None => s.files.push((name.to_string(), state, b)),
    }
}

#[cfg(target_arch = "wasm32")]
pub fn bytes(path: &str) -> Option<&'static [u8]> {
    let s = fetched::STORE.lock().expect("lock");
    s.files
        .iter()
        .find(|f| f.0 == path && f.1 == FileState::Ready)
        .map(|f| f.2)
}

/// Where the file behind an `asset:` spec stands. Native: embedded, always ready.
pub fn state(spec: &str) -> FileState {
    let Some(name) = spec.strip_prefix("asset:") else {
        return FileState::Ready;
    };
    #[cfg(target_arch = "wasm32")]
    {
        let s = fetched::STORE.lock().expect("lock");
        s.files
            .iter()
            .find(|f| f.0 == name)
            .map(|f| f.1.clone())
            .unwrap_or_else(|| FileState::Failed(format!("{name} is not in manifest.json")))
    }
    #[cfg(not(target_arch = "wasm32"))]
    match bytes(name) {
        Some(_) => FileState::Ready,
        None => FileState::Failed(format!("no shipped model '{name}'")),
    }
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
            let f = crate::engine::checkpoint::ModelFile::from_bytes(name, b).unwrap();
            assert_eq!(f.meta.data, e.data);
            assert_eq!(f.meta.steps, e.steps, "{name}");
            assert_eq!(super::state(&e.path), super::FileState::Ready);
        }
    }
}
