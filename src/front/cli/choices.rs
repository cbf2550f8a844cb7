//! The choices people type (`--param vp`, `--device cpu`, ...) as clap value enums, so
//! `--help` lists them and shell completions (`tract-studio completions SHELL`) offer them.
//! Each maps onto the engine's own type, which keeps its `FromStr` (the engine knows no
//! clap); a wrong value is refused with the flag, the value and the engine's own message.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::ValueEnum;
use clap::builder::{PossibleValue, TypedValueParser};

use crate::engine::checkpoint::Storage;
use crate::engine::device::Choice;
use crate::engine::diffusion::Solver;
use crate::engine::distill::Method;
use crate::engine::schedule::{Param, Spacing};

/// A value enum with the message for a value it does not know.
pub(super) trait Pick: ValueEnum + Clone + Send + Sync + 'static {
    /// What is wrong with `s` and what was expected (no flag name: the parser adds it).
    fn unknown(s: &str) -> String {
        let names: Vec<String> = Self::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        let list = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        format!("unknown value '{s}': expected {list}")
    }
}

/// The engine's message for a value its `FromStr` refuses.
fn engine_message<T: std::str::FromStr>(s: &str) -> Option<String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().err().map(|e| e.to_string())
}

/// clap's parser for a [`Pick`]: the enum's possible values (for `--help` and completions),
/// and on a wrong value `--FLAG VALUE: message` (clap's own message would drop the engine's
/// wording, which scripts and docs/reliability.md quote).
#[derive(Clone)]
pub(super) struct Parser<E>(PhantomData<E>);

pub(super) fn pick<E: Pick>() -> Parser<E> {
    Parser(PhantomData)
}

impl<E: Pick> TypedValueParser for Parser<E> {
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<E, clap::Error> {
        let s = value.to_string_lossy();
        E::from_str(&s, false).map_err(|_| {
            let flag = arg
                .and_then(|a| a.get_long().map(|l| format!("--{l}")))
                .unwrap_or_else(|| "value".into());
            let mut cmd = cmd.clone();
            cmd.error(
                clap::error::ErrorKind::InvalidValue,
                format!("{flag} {s}: {}", E::unknown(&s)),
            )
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            E::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value()),
        ))
    }
}

/// `--param`: the diffusion's parametrisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum ParamArg {
    /// variance preserving, cosine log-SNR schedule (1024-step grid)
    Vp,
    /// variance exploding, Karras sigmas (EDM; 40-step grid)
    Ve,
}

impl Pick for ParamArg {
    fn unknown(s: &str) -> String {
        engine_message::<Param>(s).unwrap_or_default()
    }
}

impl From<ParamArg> for Param {
    fn from(p: ParamArg) -> Param {
        match p {
            ParamArg::Vp => Param::Vp,
            ParamArg::Ve => Param::Ve,
        }
    }
}

/// `--solver`: the sampler's step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum SolverArg {
    /// DDIM (eta 0): one network evaluation per step
    Ddim,
    /// Heun / RK2: two network evaluations per step (one on the last)
    Heun,
}

impl Pick for SolverArg {
    fn unknown(s: &str) -> String {
        engine_message::<Solver>(s).unwrap_or_default()
    }
}

impl From<SolverArg> for Solver {
    fn from(s: SolverArg) -> Solver {
        match s {
            SolverArg::Ddim => Solver::Ddim,
            SolverArg::Heun => Solver::Heun,
        }
    }
}

/// `--method`: the distillation method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum MethodArg {
    /// TRACT: transitive closure time-distillation (few phases, e.g. 1024,32,1)
    Tract,
    /// BTD: binary time-distillation (progressive distillation, halving per phase)
    Btd,
}

impl Pick for MethodArg {
    fn unknown(s: &str) -> String {
        engine_message::<Method>(s).unwrap_or_default()
    }
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Tract => Method::Tract,
            MethodArg::Btd => Method::Btd,
        }
    }
}

/// `--size`: the UNet preset for image data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum SizeArg {
    /// 0.27M parameters: quick CPU runs
    Tiny,
    /// 1.06M parameters: the default
    Small,
    /// a GPU-sized network
    Large,
}

impl SizeArg {
    /// The preset's name in `UnetConfig::preset`.
    pub(super) fn name(self) -> &'static str {
        match self {
            SizeArg::Tiny => "tiny",
            SizeArg::Small => "small",
            SizeArg::Large => "large",
        }
    }
}

impl Pick for SizeArg {
    fn unknown(_: &str) -> String {
        "expected tiny, small or large".into()
    }
}

/// `--dtype`: how a model file stores its weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum DtypeArg {
    /// half precision: half the bytes, read back as f32
    F16,
    /// single precision: exact
    F32,
}

impl Pick for DtypeArg {
    fn unknown(s: &str) -> String {
        engine_message::<Storage>(s).unwrap_or_default()
    }
}

impl From<DtypeArg> for Storage {
    fn from(d: DtypeArg) -> Storage {
        match d {
            DtypeArg::F16 => Storage::F16,
            DtypeArg::F32 => Storage::F32,
        }
    }
}

/// `--device`: where the work runs. Every command defaults to `auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(super) enum DeviceArg {
    /// a hardware GPU through wgpu when there is one, else the CPU backend
    #[default]
    Auto,
    /// Burn's CPU backend with the project's CPU kernels
    Cpu,
    /// wgpu, whatever the adapter (a software one such as lavapipe included)
    #[value(alias = "gpu")]
    Wgpu,
}

impl Pick for DeviceArg {
    fn unknown(s: &str) -> String {
        engine_message::<Choice>(s).unwrap_or_default()
    }
}

impl From<DeviceArg> for Choice {
    fn from(d: DeviceArg) -> Choice {
        match d {
            DeviceArg::Auto => Choice::Auto,
            DeviceArg::Cpu => Choice::Cpu,
            DeviceArg::Wgpu => Choice::Wgpu,
        }
    }
}

/// `--spacing`: diffusers' timestep spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum SpacingArg {
    /// the grid's end included, steps counted back from T
    Trailing,
    /// steps counted up from 0 (diffusers' older default)
    Leading,
    /// evenly spaced from 0 to T-1, rounded
    Linspace,
}

impl Pick for SpacingArg {
    fn unknown(s: &str) -> String {
        engine_message::<Spacing>(s).unwrap_or_default()
    }
}

impl From<SpacingArg> for Spacing {
    fn from(s: SpacingArg) -> Spacing {
        match s {
            SpacingArg::Trailing => Spacing::Trailing,
            SpacingArg::Leading => Spacing::Leading,
            SpacingArg::Linspace => Spacing::Linspace,
        }
    }
}

/// `export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum FormatArg {
    /// a diffusers DDIMPipeline folder (model_index.json, unet/, scheduler/)
    Diffusers,
}

impl Pick for FormatArg {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value clap offers is one the engine's own parser takes, and the other way round.
    #[test]
    fn choices_match_the_engine() {
        fn names<E: Pick>() -> Vec<String> {
            E::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|p| p.get_name().to_string())
                .collect()
        }
        for n in names::<ParamArg>() {
            let e: Param = ParamArg::from_str(&n, false).unwrap().into();
            assert_eq!(n.parse::<Param>().unwrap(), e);
        }
        for n in names::<SolverArg>() {
            let e: Solver = SolverArg::from_str(&n, false).unwrap().into();
            assert_eq!(n.parse::<Solver>().unwrap(), e);
        }
        for n in names::<MethodArg>() {
            let e: Method = MethodArg::from_str(&n, false).unwrap().into();
            assert_eq!(n.parse::<Method>().unwrap(), e);
        }
        for n in names::<DeviceArg>() {
            let e: Choice = DeviceArg::from_str(&n, false).unwrap().into();
            assert_eq!(n.parse::<Choice>().unwrap(), e);
        }
        assert_eq!(
            Choice::from(DeviceArg::from_str("gpu", false).unwrap()),
            Choice::Wgpu
        );
        for n in names::<SpacingArg>() {
            let e: Spacing = SpacingArg::from_str(&n, false).unwrap().into();
            assert_eq!(n.parse::<Spacing>().unwrap(), e);
        }
        for n in names::<DtypeArg>() {
            let e: Storage = DtypeArg::from_str(&n, false).unwrap().into();
            assert_eq!(
                std::mem::discriminant(&n.parse::<Storage>().unwrap()),
                std::mem::discriminant(&e)
            );
        }
        for n in names::<SizeArg>() {
            let s = SizeArg::from_str(&n, false).unwrap();
            assert_eq!(s.name(), n);
            assert!(crate::engine::model::UnetConfig::preset(&n, 1, 32, 32, Param::Vp).is_some());
        }
        assert_eq!(
            FormatArg::unknown("x"),
            "unknown value 'x': expected diffusers"
        );
        assert_eq!(
            SizeArg::unknown("huge"),
            "expected tiny, small or large".to_string()
        );
    }
}
