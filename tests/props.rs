//! Property tests of what people type and what files hold: every parser takes any string and
//! gives Ok or an error (never a panic), and the checkpoint reader takes any bytes; a valid
//! file with a byte flipped or cut off is refused, or reads back exactly as written.

use std::path::Path;

use proptest::prelude::*;
use tract_studio::checkpoint::{ModelFile, Reader, serialize_tensors};
use tract_studio::data::Data;
use tract_studio::data::gmm::Gmm;
use tract_studio::schedule::{MAX_STEPS, Schedule};

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings that look like schedules: digits, commas, spaces, signs, letters.
fn schedule_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "[0-9, +-]{0,24}",
        "[0-9]{1,14}(,[0-9]{1,14}){0,5}",
        prop::collection::vec(0u64..=u64::MAX, 0..6).prop_map(|v| v
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn schedule_strings_never_panic(s in schedule_like()) {
        match Schedule::parse(&s) {
            Ok(sc) => {
                // what is accepted is what the docs promise
                prop_assert!(sc.steps.len() >= 2);
                prop_assert!(sc.steps[0] <= MAX_STEPS);
                for w in sc.steps.windows(2) {
                    prop_assert!(w[1] >= 1 && w[1] < w[0] && w[0] % w[1] == 0);
                }
                let _ = sc.btd_phases();
            }
            Err(e) => prop_assert!(e.to_string().contains("invalid distillation schedule")),
        }
    }

    #[test]
    fn data_specs_never_panic(kind in prop_oneof![
        Just(""), Just("toy:"), Just("gmm:"), Just("images:"), Just("mnist:"),
        Just("fashion-mnist:"), Just("gmm:/nonexistent/"), Just("images:/nonexistent,")
    ], rest in ".{0,24}") {
        let spec = format!("{kind}{rest}");
        // never the default Fashion-MNIST folder: it would load 60,000 images
        prop_assume!(spec != "fashion-mnist" && spec != "fashion-mnist:");
        match Data::parse(&spec) {
            Ok(d) => prop_assert!(d.dim() > 0),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn mixture_json_text_never_panics(s in ".*") {
        let _ = Gmm::from_json(&s);
    }

    #[test]
    fn mixture_json_of_any_numbers_never_panics(
        comps in prop::collection::vec(
            (any::<f64>(), prop::collection::vec(any::<f64>(), 0..4), any::<f64>()),
            0..5,
        ),
        raw in any::<bool>(),
    ) {
        // numbers written as Rust prints them: NaN, inf, 1e300, -0, ...
        let body: Vec<String> = comps
            .iter()
            .map(|(w, m, s)| {
                let m: Vec<String> = m.iter().map(|x| if raw { format!("{x}") } else { format!("{x:e}") }).collect();
                format!("{{\"weight\": {w}, \"mean\": [{}], \"std\": {s}}}", m.join(","))
            })
            .collect();
        let text = format!("{{\"components\": [{}]}}", body.join(","));
        if let Ok(g) = Gmm::from_json(&text) {
            let d = g.dim();
            prop_assert!(d > 0);
            let total: f64 = g.components.iter().map(|c| c.weight).sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
            for c in &g.components {
                prop_assert!(c.mean.len() == d && c.std > 0.0 && c.std.is_finite());
                prop_assert!(c.mean.iter().all(|m| m.is_finite()));
            }
            prop_assert!(g.rms().is_finite());
        }
    }

    #[test]
    fn numeric_flags_never_panic(s in prop_oneof![".*", "[-+]?[0-9.eEinfa]{0,12}"]) {
        use tract_studio::flags::*;
        if let Ok(v) = positive_f64(&s) { prop_assert!(v.is_finite() && v > 0.0) }
        if let Ok(v) = momentum(&s) { prop_assert!((0.0..1.0).contains(&v)) }
        if let Ok(v) = open_unit(&s) { prop_assert!(v > 0.0 && v < 1.0) }
        if let Ok(v) = count(&s, 1, 65_536) { prop_assert!((1..=65_536).contains(&v)) }
        if let Ok(v) = phase_split(&s) { prop_assert!(v.iter().all(|w| w.is_finite() && *w > 0.0)) }
        let _ = s.parse::<tract_studio::schedule::Param>();
        let _ = s.parse::<tract_studio::distill::Method>();
        let _ = s.parse::<tract_studio::diffusion::Solver>();
        let _ = s.parse::<tract_studio::device::Choice>();
        let _ = tract_studio::data::folder::FolderSpec::parse(&s);
    }

    #[test]
    fn the_checkpoint_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Reader::from_bytes(Path::new("any.safetensors"), bytes.clone());
        let _ = ModelFile::from_bytes("any.safetensors", &bytes);
    }

    #[test]
    fn the_checkpoint_reader_takes_any_header(
        json in prop_oneof![
            ".{0,64}",
            Just("{\"__metadata__\":{\"tract_studio\":\"{}\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".to_string()),
            "\\{\"w\":\\{\"dtype\":\"(F32|F16|I8|BOOL|U64)\",\"shape\":\\[[0-9]{1,12}(,[0-9]{1,12}){0,3}\\],\"data_offsets\":\\[[0-9]{1,12},[0-9]{1,12}\\]\\}\\}",
        ],
        data in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // a well-framed file (length, JSON header, data) with whatever the header says
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b.extend_from_slice(&data);
        let _ = Reader::from_bytes(Path::new("hdr.safetensors"), b.clone());
        let _ = ModelFile::from_bytes("hdr.safetensors", &b);
    }
}

/// A real model file's bytes (the shipped ring8 student, rewritten with a checksum).
fn model_bytes() -> (ModelFile, Vec<u8>) {
    let m = ModelFile::from_bytes(
        "ring8-tract-1step.safetensors",
        tract_studio::assets::bytes("ring8-tract-1step.safetensors").unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    m.save(&p).unwrap();
    let b = std::fs::read(&p).unwrap();
    (m, b)
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn a_flipped_byte_is_refused_or_harmless(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        thread_local!(static MODEL: (ModelFile, Vec<u8>) = model_bytes());
        MODEL.with(|(m, good)| {
            let mut bad = good.clone();
            let i = at.index(bad.len());
            bad[i] ^= mask;
            match ModelFile::from_bytes("flipped.safetensors", &bad) {
                Err(_) => Ok(()),
                // accepted only when nothing that matters changed (e.g. a space of the
                // header's padding became another space-like byte)
                Ok(back) => {
                    prop_assert_eq!(&back.meta, &m.meta, "flip at {} changed the metadata", i);
                    prop_assert!(back.flat == m.flat, "flip at {} changed the weights", i);
                    Ok(())
                }
            }
        })?;
    }

    #[test]
    fn a_cut_file_is_refused(keep in any::<prop::sample::Index>()) {
        thread_local!(static MODEL: (ModelFile, Vec<u8>) = model_bytes());
        MODEL.with(|(_, good)| {
            let n = keep.index(good.len());
            prop_assert!(ModelFile::from_bytes("cut.safetensors", &good[..n]).is_err());
            Ok(())
        })?;
    }

    #[test]
    fn written_files_read_back_exactly(
        tensors in prop::collection::btree_map("[a-z._]{1,8}", prop::collection::vec(any::<f32>(), 0..9), 0..4),
        meta in ".{0,32}",
    ) {
        let ts: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
            .iter()
            .map(|(n, v)| (n.clone(), vec![v.len()], v.clone()))
            .collect();
        let b = serialize_tensors(&ts, &meta).unwrap();
        prop_assert_eq!(&b, &serialize_tensors(&ts, &meta).unwrap());
        let r = Reader::from_bytes(Path::new("rt.safetensors"), b).unwrap();
        prop_assert_eq!(&r.meta, &meta);
        for (n, s, v) in &ts {
            let back = r.tensor(n, s).unwrap();
            prop_assert!(back.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
