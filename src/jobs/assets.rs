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
    /// The gallery set within the data: the models made from one teacher (a gallery compares
    /// models of one set; none is the data's own set, e.g. `diffusers` for the students of a
    /// diffusers teacher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// The most steps the galleries sample this model at (none: its whole grid): a diffusers
    /// teacher's 50-step DDIM is its best, its 1000 steps are slower and not better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
}

impl ManifestEntry {
    /// Whether the entry belongs to the gallery of `data` and `set`.
    pub fn is_in(&self, data: &str, set: Option<&str>) -> bool {
        self.data == data && self.set.as_deref() == set
    }
}

/// The gallery sets of `data` in manifest order (none, the data's own set, first if present).
pub fn sets(manifest: &[ManifestEntry], data: &str) -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = vec![];
    for e in manifest.iter().filter(|e| e.data == data) {
        if !v.contains(&e.set) {
            v.push(e.set.clone());
        }
    }
    v.sort_by_key(|s| s.is_some());
    v
}

/// The set a gallery of `data` shows when none is asked for: the data's own models, else its
/// first set (emoji has only `diffusers`). The app, `gallery --data` and the browser use it.
pub fn default_set(manifest: &[ManifestEntry], data: &str) -> Option<String> {
    sets(manifest, data).into_iter().next().flatten()
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
        // a teacher trained by diffusers' own recipe and its students (gallery set `diffusers`);
        // `export` turns each back into a DDIMPipeline folder
        "fashion-mnist-diffusers-teacher.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-teacher.safetensors"
        )),
        "fashion-mnist-diffusers-tract-1step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-tract-1step.safetensors"
        )),
        "fashion-mnist-diffusers-btd-1step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-btd-1step.safetensors"
        )),
        "fashion-mnist-diffusers-tract-2step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-tract-2step.safetensors"
        )),
        "fashion-mnist-diffusers-btd-2step.safetensors" => Some(include_bytes!(
            "../../assets/fashion-mnist-diffusers-btd-2step.safetensors"
        )),
        // the colour set: an emoji teacher trained by diffusers' recipe and its students
        "emoji-diffusers-teacher.safetensors" => Some(include_bytes!(
            "../../assets/emoji-diffusers-teacher.safetensors"
        )),
        "emoji-diffusers-tract-1step.safetensors" => Some(include_bytes!(
            "../../assets/emoji-diffusers-tract-1step.safetensors"
        )),
        "emoji-diffusers-btd-1step.safetensors" => Some(include_bytes!(
            "../../assets/emoji-diffusers-btd-1step.safetensors"
        )),
        "emoji-diffusers-tract-2step.safetensors" => Some(include_bytes!(
            "../../assets/emoji-diffusers-tract-2step.safetensors"
        )),
        "emoji-diffusers-btd-2step.safetensors" => Some(include_bytes!(
            "../../assets/emoji-diffusers-btd-2step.safetensors"
        )),
        // not samplers: the feature networks of `eval`'s classifier FID
        "classifier-fashion-mnist.safetensors" => Some(include_bytes!(
            "../../assets/classifier-fashion-mnist.safetensors"
        )),
        "classifier-emoji.safetensors" => {
            Some(include_bytes!("../../assets/classifier-emoji.safetensors"))
        }
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
            if let Some(k) = e.max_steps {
                assert!(k <= e.steps && e.kind == "teacher", "{name}: max_steps {k}");
            }
        }
        // one shape per gallery set (a gallery compares models of one set)
        for d in ["toy:ring8", "fashion-mnist", "emoji"] {
            for set in super::sets(&super::manifest(), d) {
                let shapes: Vec<Vec<usize>> = super::manifest()
                    .iter()
                    .filter(|e| e.is_in(d, set.as_deref()))
                    .map(|e| {
                        let name = e.path.strip_prefix("asset:").unwrap();
                        let b = super::bytes(name).unwrap();
                        let f = crate::engine::checkpoint::ModelFile::from_bytes(name, b).unwrap();
                        let shape = f
                            .meta
                            .net()
                            .and_then(|n| n.image_shape().map(|s| s.to_vec()));
                        shape.unwrap_or_else(|| vec![f.meta.dim()])
                    })
                    .collect();
                assert!(
                    shapes.windows(2).all(|w| w[0] == w[1]),
                    "{d} {set:?}: {shapes:?}"
                );
            }
        }
        assert_eq!(
            super::sets(&super::manifest(), "fashion-mnist"),
            vec![None, Some("diffusers".to_string())]
        );
    }
}
