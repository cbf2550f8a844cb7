//! `eval` and `classifier`: metrics of a samples file as one JSON line (mixtures: sliced W2,
//! mode weights, RMSE; images: the classifier-feature FID, PSNR), and the classifier it uses.

use std::path::PathBuf;

use anyhow::bail;

use super::choices::{DeviceArg, pick};
use super::progress::Progress;
use super::{MAX_BATCH, count, examples, pick_device};
use crate::engine::data::Data;
use crate::engine::device;
use crate::engine::eval;
use crate::jobs::generate::read_samples;

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("metrics of samples against their data (recorded in the file by `sample`)", "tract-studio eval --samples s.safetensors"),
    ("and the RMSE to a reference model's samples from the same noise", "tract-studio eval --samples s.safetensors --reference ref.safetensors"),
]))]
pub(super) struct EvalArgs {
    /// a samples file written by `tract-studio sample`
    #[arg(long)]
    pub(super) samples: PathBuf,
    /// the data to compare with (default: the data the samples file records, i.e. the
    /// sampled model's)
    #[arg(long)]
    pub(super) data: Option<String>,
    /// samples of a reference model from the same noise (RMSE; PSNR for images); of another
    /// size, the first samples of both (their noise must be the same)
    #[arg(long)]
    pub(super) reference: Option<PathBuf>,
    /// images: the classifier for the feature FID (default: the shipped one of fashion-mnist
    /// or emoji; other image data needs one of its own, see `classifier`)
    #[arg(long)]
    pub(super) classifier: Option<PathBuf>,
    /// the seed of the fresh data and the random projections of sliced W2
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
}

#[derive(clap::Args)]
#[command(after_help = examples(&[
    ("a classifier for MNIST-format data, for `eval --classifier`", "tract-studio classifier --data mnist:data/mnist --out mnist-classifier.safetensors"),
]))]
pub(super) struct ClassifierArgs {
    /// labelled image data: fashion-mnist[:DIR] or mnist:DIR
    #[arg(long, default_value = "fashion-mnist")]
    pub(super) data: String,
    /// the classifier file to write (.safetensors)
    #[arg(long)]
    pub(super) out: PathBuf,
    /// training samples (passes over the data times its size)
    #[arg(long, default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) train_samples: u64,
    /// samples per optimizer step
    #[arg(long, default_value_t = 128, value_parser = count(1, MAX_BATCH))]
    pub(super) batch: usize,
    /// initialisation and data order
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    #[arg(long, default_value = "auto", value_parser = pick::<DeviceArg>())]
    pub(super) device: DeviceArg,
}

/// `--data`, or the data the samples file records (`sample` writes it).
fn data_of(a: &EvalArgs) -> anyhow::Result<String> {
    if let Some(d) = &a.data {
        return Ok(d.clone());
    }
    let meta = crate::jobs::inspect::samples_meta(&a.samples)?;
    match meta.get("data").and_then(|d| d.as_str()) {
        Some(d) if !d.is_empty() => {
            eprintln!("data: {d} (recorded in {})", a.samples.display());
            Ok(d.to_string())
        }
        _ => bail!(
            "{}: the file does not record its data; give --data DATA (e.g. toy:ring8 or fashion-mnist)",
            a.samples.display()
        ),
    }
}

/// The reference's samples to compare with: both files from the same noise. Of different
/// sizes, the first rows of both, where their noise is the same (a run and a longer run of the
/// same seed); files without noise (not written by `sample`) must be of the same size.
fn reference_rows(
    path: &std::path::Path,
    samples: &std::path::Path,
    s: &[f32],
    noise: &[f32],
    dim: usize,
) -> anyhow::Result<Vec<f32>> {
    let (r, rn, rd) = read_samples(path)?;
    let (n, nr) = (s.len() / dim.max(1), r.len() / rd.max(1));
    let noise_known = noise.len() == s.len() && rn.len() == r.len();
    if rd != dim || (n != nr && !noise_known) {
        bail!(
            "{}: reference has {nr} x {rd} values, samples have {n} x {dim}; expected the same N and dimension (same --n and noise)",
            path.display(),
        );
    }
    let k = n.min(nr) * dim;
    if noise_known && noise[..k] != rn[..k] {
        bail!(
            "{}: its noise is not that of {} in the first {} samples; a reference is compared sample by sample, so it must come from the same noise (the same --seed)",
            path.display(),
            samples.display(),
            n.min(nr)
        );
    }
    if n != nr {
        eprintln!(
            "reference: the first {} samples of each (the same noise; {} has {nr}, {} has {n})",
            n.min(nr),
            path.display(),
            samples.display()
        );
    }
    Ok(r[..k].to_vec())
}

pub(super) fn eval_cmd(mut a: EvalArgs) -> anyhow::Result<()> {
    let (s, noise, dim) = read_samples(&a.samples)?;
    let spec = data_of(&a)?;
    a.data = Some(spec.clone());
    let data = Data::parse(&spec)?;
    if dim != data.dim() {
        bail!(
            "{}: samples are {dim}-dimensional but {} is {}-dimensional",
            a.samples.display(),
            spec,
            data.dim()
        );
    }
    let reference = match &a.reference {
        Some(p) => Some(reference_rows(p, &a.samples, &s, &noise, dim)?),
        None => None,
    };
    let n = s.len() / dim;
    if data.is_images() {
        return eval_images(&a, &data, &s, reference.as_deref());
    }
    let fresh = data.sample(
        &mut crate::engine::rng::Rng::stream(a.seed, crate::engine::rng::purpose::EVAL_DATA),
        n,
    );
    let sw2 = eval::sliced_w2(&s, &fresh, dim, 256, a.seed);
    let we = data
        .mixture()
        .map(|g| eval::weight_errors(g, &s))
        .unwrap_or_default();
    let maxw = we.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let n_ref = reference.as_ref().map(|r| r.len() / dim);
    let r = reference.map(|r| eval::rmse(&s[..r.len()], &r));
    println!(
        "{}",
        serde_json::json!({"samples": a.samples, "n": n, "sw2": sw2, "weight_errors": we, "max_weight_error": maxw, "rmse_to_reference": r, "n_reference": n_ref})
    );
    Ok(())
}

/// Images: classifier-feature FID against the held-out split, PSNR / RMSE to a reference.
pub(super) fn eval_images(
    a: &EvalArgs,
    data: &Data,
    s: &[f32],
    reference: Option<&[f32]>,
) -> anyhow::Result<()> {
    use crate::engine::eval::classifier::{Classifier, FEATURES};
    let dev = device::cpu();
    let spec = a.data.as_deref().unwrap_or(&data.spec);
    // the shipped classifiers: Fashion-MNIST's and the emoji groups' (32x32)
    let family = |d: &str| d.split([':', ',']).next().unwrap_or("").to_string();
    let shipped = match family(spec).as_str() {
        "emoji" => "emoji",
        _ => "fashion-mnist",
    };
    let (clf, clf_name) = match &a.classifier {
        Some(p) => (Classifier::load(p, &dev.device)?, p.display().to_string()),
        None => {
            let name = format!("classifier-{shipped}.safetensors");
            let name = name.as_str();
            let b = crate::jobs::assets::bytes(name).expect("the classifier is embedded");
            (
                Classifier::from_bytes(name, b.to_vec(), &dev.device)?,
                format!("asset:{name}"),
            )
        }
    };
    let m = &clf.meta;
    let dims = |v: &[usize]| {
        v.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    };
    // a shipped classifier knows its own data's classes only: its features say little about
    // other images, even of the same shape
    if a.classifier.is_none() && family(spec) != shipped {
        bail!(
            "{spec}: the shipped classifier ({clf_name}) is trained on Fashion-MNIST ({} images), so its FID would say little about this data ({} images); train one for it with `tract-studio classifier --data {spec} --out C.safetensors` and give --classifier C.safetensors",
            dims(&[m.channels, m.height, m.width]),
            dims(&data.shape())
        );
    }
    if m.channels * m.height * m.width != data.dim() {
        bail!(
            "{clf_name} takes {} images but {spec} has {}; train one for this data with `tract-studio classifier --data {spec}`",
            dims(&[m.channels, m.height, m.width]),
            dims(&data.shape()),
        );
    }
    if a.classifier.is_some() && family(&m.data) != family(spec) {
        eprintln!(
            "warning: {clf_name} was trained on {}, the samples are of {spec}: its FID compares features learnt on other data",
            m.data
        );
    }
    let held = data.held_out()?;
    let n = s.len() / data.dim();
    let fs = clf.features(s);
    let fr = clf.features(&held.pixels);
    let fid = eval::fid::feature_distance(&fs, &fr, FEATURES);
    let psnr = reference.map(|r| eval::psnr(&s[..r.len()], r));
    let rmse = reference.map(|r| eval::rmse(&s[..r.len()], r));
    let n_ref = reference.map(|r| r.len() / data.dim());
    println!(
        "{}",
        serde_json::json!({
            "samples": a.samples, "n": n,
            "fid_classifier": fid,
            "fid_note": format!("FID in the penultimate features of {clf_name} (test accuracy {:.3}) against {} held-out images; not comparable to Inception FID", m.test_accuracy, held.n),
            "psnr_to_reference": psnr, "rmse_to_reference": rmse, "n_reference": n_ref
        })
    );
    Ok(())
}

pub(super) fn classifier_cmd(a: ClassifierArgs) -> anyhow::Result<()> {
    use crate::engine::eval::classifier::{Classifier, ClassifierMeta};
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let dev = pick_device(a.device)?;
    let data = Data::parse(&a.data)?;
    let crate::engine::data::Source::Images(set) = &data.source else {
        bail!(
            "{}: a classifier needs labelled images (fashion-mnist[:DIR], mnist:DIR or emoji)",
            a.data
        );
    };
    let test = data.held_out()?;
    let classes = set
        .labels
        .as_ref()
        .map(|l| l.iter().copied().max().unwrap_or(0) as usize + 1)
        .ok_or_else(|| anyhow::anyhow!("{}: no label file; a classifier needs labels", a.data))?;
    let meta = ClassifierMeta {
        kind: "classifier".into(),
        data: a.data.clone(),
        channels: set.c,
        height: set.h,
        width: set.w,
        classes,
        train_samples: a.train_samples,
        test_accuracy: 0.0,
    };
    let mut clf = Classifier::new(meta, &mut crate::engine::rng::Rng::new(a.seed), &dev.device);
    let prog = Progress::new("classifier");
    let t = std::time::Instant::now();
    let mut last = 0.0f32;
    clf.train(
        set,
        a.train_samples,
        a.batch,
        a.seed,
        &mut |step, steps, loss| {
            last = if step == 1 {
                loss
            } else {
                0.98 * last + 0.02 * loss
            };
            prog.bar.set_message(format!("loss {last:.3}"));
            prog.update(step * a.batch as u64, steps * a.batch as u64);
        },
    )?;
    prog.bar.finish_and_clear();
    clf.meta.test_accuracy = clf.accuracy(&test)?;
    clf.save(&a.out)?;
    println!(
        "classifier: {} training samples in {:.0}s, loss {last:.3}, test accuracy {:.4} on {} images -> {}",
        a.train_samples,
        t.elapsed().as_secs_f64(),
        clf.meta.test_accuracy,
        test.n,
        a.out.display()
    );
    Ok(())
}
