//! Faults nobody plans for: SIGKILL at random moments (and during checkpoint writes), a run
//! driven to NaN, and a full disk. After each, nothing is lost: every checkpoint on disk
//! loads (checksums verified), resuming continues, and the result is byte-identical to a run
//! that was never interrupted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tract_studio::checkpoint::{ModelFile, Reader};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tract-studio"));
    c.env("RUST_BACKTRACE", "1");
    c
}

fn run(args: &[String]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn ok(args: &[String]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tract-faults-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// xorshift64*: the kill moments, reproducible.
struct Moments(u64);
impl Moments {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every checkpoint-like file in the run folder loads: the state (checksum verified, a
/// training state) and every model file. Temp files of interrupted writes are skipped.
fn check_files(dir: &Path, what: &str) {
    let state = dir.join("state.safetensors");
    if state.exists() {
        let r = Reader::open(&state).unwrap_or_else(|e| panic!("{what}: state unreadable: {e}"));
        assert!(
            r.meta.contains("tract-studio-state/1"),
            "{what}: {}",
            r.meta
        );
    }
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".safetensors") && name != "state.safetensors" {
            ModelFile::load(&p).unwrap_or_else(|e| panic!("{what}: {name} unreadable: {e}"));
        }
    }
}

/// Temp files of atomic writes in `dir` (of process `pid` only, when given).
fn temp_files_of(dir: &Path, pid: Option<u32>) -> usize {
    let tag = match pid {
        Some(p) => format!(".tmp{p}"),
        None => ".tmp".into(),
    };
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter(|e| {
                e.as_ref()
                    .map(|e| {
                        let n = e.file_name().to_string_lossy().to_string();
                        n.contains(&tag) && (pid.is_none() || n.ends_with(&tag))
                    })
                    .unwrap_or(false)
            })
            .count()
        })
        .unwrap_or(0)
}

fn temp_files(dir: &Path) -> usize {
    temp_files_of(dir, None)
}

/// A trap for the child's next checkpoint write: a FIFO where the temp file of its state will
/// be (`state.safetensors.tmpPID`, as engine::error::write_atomic names it). The child's
/// `File::create` opens the FIFO; a reader thread reads one byte, and from then on the
/// writer is inside `write_all` with the pipe full (a state is far larger than a pipe's
/// 64 KiB), so a kill lands mid-write whatever the machine's load. `fired` says when the byte
/// came; dropping the trap closes the read end (after the kill) and removes an unused FIFO.
struct Trap {
    fifo: PathBuf,
    fired: std::sync::mpsc::Receiver<()>,
    /// the child was caught in the write
    hit: bool,
    done: std::sync::mpsc::Sender<()>,
}

impl Trap {
    fn set(dir: &Path, pid: u32) -> Trap {
        let fifo = dir.join(format!("state.safetensors.tmp{pid}"));
        // the name is taken while a write is in progress (a regular temp file): wait for its rename
        for _ in 0..100_000 {
            let made = Command::new("mkfifo")
                .arg(&fifo)
                .stderr(Stdio::null())
                .status()
                .expect("mkfifo runs");
            if made.success() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let (fire, fired) = std::sync::mpsc::channel();
        let (done, wait_done) = std::sync::mpsc::channel::<()>();
        let f = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            // blocks until the child opens the FIFO to write its state
            let Ok(mut r) = std::fs::File::open(&f) else {
                return;
            };
            let mut b = [0u8; 1];
            if r.read(&mut b).unwrap_or(0) == 1 {
                let _ = fire.send(());
            }
            // keep the read end open until the writer is dead (closing it would fail the write)
            let _ = wait_done.recv();
        });
        Trap {
            fifo,
            fired,
            hit: false,
            done,
        }
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        let _ = self.done.send(());
        if self.hit {
            // the FIFO stays, as a killed write's temp file: the resumed run must clear it
            return;
        }
        // never written (the child finished first): let the reader thread go (a writer that
        // does not block, O_NONBLOCK) and remove the FIFO, which would count as a temp file
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(0o4000)
            .open(&self.fifo);
        let _ = std::fs::remove_file(&self.fifo);
    }
}

struct KillReport {
    kills: usize,
    during_write: usize,
    lives: usize,
}

/// Run `args` (fresh, or `--resume` once a state exists) and SIGKILL it at pseudo-random
/// moments until it finishes: at least `min_kills` kills, every other one inside the first
/// checkpoint write after its moment (held there by a [`Trap`], so it lands on a busy machine
/// too). After every kill, every file must load. `model` is the finished run's model file name.
fn kill_until_done(
    args: &[String],
    dir: &Path,
    model: &str,
    min_kills: usize,
    startup: Duration,
    span: Duration,
    seed: u64,
) -> KillReport {
    let mut m = Moments(seed);
    let (mut kills, mut during_write, mut lives) = (0, 0, 0);
    // a life: the start-up time, then up to an eighth of the work (about 16 kills a run);
    // the shortest life grows when one made no progress
    let mut work = span.saturating_sub(startup).max(Duration::from_millis(100));
    let mut floor = startup.mul_f64(0.9);
    // a run that ends before `min_kills` kills was timed (`span`) while the machine was busier
    // than it is now: it starts over with lives half as long, at most 3 times
    let mut retries = 0;
    loop {
        lives += 1;
        assert!(lives < 200, "no end after {lives} lives ({kills} kills)");
        let mut a = args.to_vec();
        if dir.join("state.safetensors").exists() {
            a.push("--resume".into());
        }
        let before = step_of(dir);
        let mut child = bin()
            .args(&a)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = Some(child.id());
        let t = Instant::now();
        let deadline = floor + work.mul_f64(m.next() / 8.0);
        let at_write = kills % 2 == 1 && kills < min_kills + 4;
        let mut exited = None;
        let mut trap = None;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                exited = Some(s);
                break;
            }
            let el = t.elapsed();
            if el >= deadline && !at_write {
                break;
            }
            if el >= deadline && at_write {
                // a resuming child clears temp files of its own pid at start: set it again
                if trap
                    .as_ref()
                    .is_some_and(|t: &Trap| std::fs::symlink_metadata(&t.fifo).is_err())
                {
                    trap = None;
                }
                let tr = trap.get_or_insert_with(|| Trap::set(dir, child.id()));
                if tr.fired.try_recv().is_ok() {
                    tr.hit = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        match exited {
            Some(s) => {
                drop(trap);
                let mut e = String::new();
                use std::io::Read;
                child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
                assert!(s.success(), "life {lives} failed:\n{e}");
                check_files(dir, &format!("after life {lives} (finished)"));
                assert_eq!(
                    temp_files(dir),
                    0,
                    "temp files of killed writes were left behind"
                );
                if kills >= min_kills {
                    return KillReport {
                        kills,
                        during_write,
                        lives,
                    };
                }
                if retries < 3 {
                    retries += 1;
                    eprintln!("finished after only {kills} kills: again, with lives half as long");
                    work /= 2;
                    (kills, during_write, floor) = (0, 0, startup.mul_f64(0.9));
                    std::fs::remove_dir_all(dir).unwrap();
                    continue;
                }
                panic!(
                    "the run finished after only {kills} kills; make it longer (start-up {startup:?}, run {span:?})"
                );
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                if temp_files_of(dir, pid) > 0 {
                    during_write += 1;
                }
                drop(trap);
                check_files(dir, &format!("after kill {kills}"));
                if dir.join(model).exists() {
                    // killed after the last file was written: the run is complete
                    if kills >= min_kills {
                        return KillReport {
                            kills,
                            during_write,
                            lives,
                        };
                    }
                    if retries < 3 {
                        retries += 1;
                        eprintln!(
                            "finished after only {kills} kills: again, with lives half as long"
                        );
                        work /= 2;
                        (kills, during_write, floor) = (0, 0, startup.mul_f64(0.9));
                        std::fs::remove_dir_all(dir).unwrap();
                        continue;
                    }
                    panic!("the run finished after only {kills} kills; make it longer");
                }
                if step_of(dir) == before {
                    floor = floor.mul_f64(1.3);
                }
            }
        }
    }
}

/// How long a run takes to its first checkpoint (start-up, one step, one write).
fn startup_time(args: &[String]) -> Duration {
    let mut a = args.to_vec();
    a.extend(strings(&["--stop-after", "1"]));
    let t = Instant::now();
    ok(&a);
    t.elapsed()
}

/// The global step of the run's state (0 without one).
fn step_of(dir: &Path) -> u64 {
    let Ok(r) = Reader::open(&dir.join("state.safetensors")) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&r.meta).unwrap();
    v["global_step"].as_u64().unwrap() + 1_000_000 * v["phase"].as_u64().unwrap()
}

#[test]
fn distill_survives_kill_9_at_random_moments() {
    let d = tmp("kill-distill");
    let args = |out: &Path| {
        strings(&[
            "distill",
            "--data",
            "toy:ring8",
            "--schedule",
            "16,4,1",
            "--train-samples",
            "12288",
            "--fit-samples",
            "4096",
            "--batch",
            "64",
            "--ckpt-every",
            "1",
            "--seed",
            "7",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (d.join("straight"), d.join("killed"));
    let t = Instant::now();
    ok(&args(&a));
    let span = t.elapsed();
    let startup = startup_time(&args(&d.join("probe")));
    let r = kill_until_done(
        &args(&b),
        &b,
        "student.safetensors",
        10,
        startup,
        span,
        0x9e37_79b9,
    );
    eprintln!(
        "distill: {} kills ({} during a checkpoint write) in {} lives; uninterrupted run {:.1}s, start-up {:.2}s",
        r.kills,
        r.during_write,
        r.lives,
        span.as_secs_f64(),
        startup.as_secs_f64()
    );
    assert!(r.kills >= 10);
    assert!(
        r.during_write >= 1,
        "no kill landed during a checkpoint write"
    );
    assert_eq!(
        std::fs::read(a.join("student.safetensors")).unwrap(),
        std::fs::read(b.join("student.safetensors")).unwrap(),
        "the killed and resumed run differs from the uninterrupted one"
    );
    assert_eq!(
        std::fs::read_to_string(a.join("loss.csv")).unwrap(),
        std::fs::read_to_string(b.join("loss.csv")).unwrap(),
        "loss logs differ"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn teacher_survives_kill_9_at_random_moments() {
    let d = tmp("kill-teacher");
    common::square_idx(&d);
    let data = format!("mnist:{}", d.display());
    let args = |out: &Path| {
        strings(&[
            "teacher",
            "--data",
            &data,
            "--size",
            "tiny",
            "--train-samples",
            "320",
            "--batch",
            "8",
            "--ckpt-every",
            "2",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let (a, b) = (d.join("straight"), d.join("killed"));
    let t = Instant::now();
    ok(&args(&a));
    let span = t.elapsed();
    let startup = startup_time(&args(&d.join("probe")));
    let r = kill_until_done(
        &args(&b),
        &b,
        "teacher.safetensors",
        10,
        startup,
        span,
        0x51ed_2701,
    );
    eprintln!(
        "teacher: {} kills ({} during a checkpoint write) in {} lives; uninterrupted run {:.1}s, start-up {:.2}s",
        r.kills,
        r.during_write,
        r.lives,
        span.as_secs_f64(),
        startup.as_secs_f64()
    );
    assert!(r.kills >= 10);
    assert_eq!(
        std::fs::read(a.join("teacher.safetensors")).unwrap(),
        std::fs::read(b.join("teacher.safetensors")).unwrap(),
        "the killed and resumed teacher differs from the uninterrupted one"
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn tiny(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "distill",
        "--data",
        "toy:ring8",
        "--schedule",
        "8,1",
        "--train-samples",
        "2048",
        "--fit-samples",
        "2048",
        "--batch",
        "256",
        "--ckpt-every",
        "2",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    v.extend(strings(extra));
    v
}

#[test]
fn nan_stops_at_the_first_bad_step_and_resume_with_a_lower_lr_continues() {
    let d = tmp("nan");
    let (a, b) = (d.join("straight"), d.join("diverged"));
    ok(&tiny(&a, &[]));
    // 4 good steps, then a learning rate of 1e30 from step 5
    ok(&tiny(&b, &["--stop-after", "4"]));
    let state = std::fs::read(b.join("state.safetensors")).unwrap();
    let o = run(&tiny(&b, &["--resume", "--lr", "1e30"]));
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    let at = e
        .find("at phase 0 (fit), step ")
        .unwrap_or_else(|| panic!("no phase and step in: {e}"));
    let step: u64 = e[at + 23..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(step > 4, "{e}");
    assert!(e.contains("training stopped: loss is"), "{e}");
    assert!(
        e.contains(&format!(
            "The last good checkpoint is {}",
            b.join("state.safetensors").display()
        )),
        "{e}"
    );
    // the last good checkpoint is untouched, and nothing else was written as a result
    assert_eq!(std::fs::read(b.join("state.safetensors")).unwrap(), state);
    assert!(!b.join("student.safetensors").exists());
    // resuming with the old rate continues from step 4: the same result as a run never
    // driven to NaN
    let o = ok(&tiny(&b, &["--resume", "--lr", "1e-3"]));
    assert!(o.contains("student:"), "{o}");
    assert_eq!(
        std::fs::read(a.join("student.safetensors")).unwrap(),
        std::fs::read(b.join("student.safetensors")).unwrap()
    );
    // a fresh run that diverges before its first checkpoint says so
    let c = d.join("fresh");
    let o = run(&tiny(&c, &["--lr", "1e30"]));
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && e.contains("There is no last good checkpoint yet"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_refuses_a_corrupt_state() {
    let d = tmp("corrupt");
    let b = d.join("run");
    ok(&tiny(&b, &["--stop-after", "3"]));
    let p = b.join("state.safetensors");
    let good = std::fs::read(&p).unwrap();
    let (mut detected, mut tried) = (0, 0);
    // a flipped byte in each tensor's data region, and in the metadata: every one is refused
    let st = safetensors::SafeTensors::deserialize(&good).unwrap();
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut spots: Vec<usize> = st
        .tensors()
        .iter()
        .map(|(_, t)| {
            let off = t.data().as_ptr() as usize - good.as_ptr() as usize;
            off + t.data().len() / 2
        })
        .collect();
    // inside the tract-studio metadata: a digit of the config
    let meta_at = good[..header]
        .windows(8)
        .position(|w| w == b"\"batch\\\"")
        .map(|i| i + 10);
    spots.extend(meta_at);
    for at in spots {
        let mut bad = good.clone();
        bad[at] ^= 0x04;
        std::fs::write(&p, &bad).unwrap();
        tried += 1;
        let o = run(&tiny(&b, &["--resume"]));
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "flip at {at} was resumed from:\n{e}");
        assert!(!e.contains("panicked"), "{e}");
        if e.contains("checksum mismatch") && e.contains("state.safetensors is corrupt") {
            detected += 1;
        }
        // nothing overwrote the corrupt state: the user can still inspect it
        assert_eq!(std::fs::read(&p).unwrap(), bad);
    }
    eprintln!("corrupt states: {detected} of {tried} flips detected by the checksum");
    assert_eq!(detected, tried);
    assert!(tried >= 6);
    std::fs::write(&p, &good).unwrap();
    ok(&tiny(&b, &["--resume"]));
    let _ = std::fs::remove_dir_all(&d);
}

/// A run whose disk fills stops with a clear message naming the file; the last good
/// checkpoint stays intact and the run continues once there is space. Needs root to mount a
/// small tmpfs; skipped (with a message) where that is not allowed.
#[test]
fn full_disk_stops_cleanly_and_keeps_the_last_checkpoint() {
    let d = tmp("full");
    let mnt = d.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .output();
    match m {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!(
                "SKIPPED full_disk_stops_cleanly_and_keeps_the_last_checkpoint: cannot mount a tmpfs here ({})",
                match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                }
            );
            return;
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let b = mnt.join("run");
    let args = |extra: &[&str]| {
        let mut v = tiny(&b, extra);
        v.extend(strings(&["--hidden", "16"]));
        v
    };
    ok(&args(&["--stop-after", "2"]));
    let state = std::fs::read(b.join("state.safetensors")).unwrap();
    // fill the disk, then give back a few pages: room for the small loss log, none for a
    // checkpoint
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut block_small = false;
        loop {
            let r = if block_small {
                f.write(&block[..4096])
            } else {
                f.write(&block)
            };
            match r {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if !block_small => block_small = true,
                Err(_) => break,
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(8192)).unwrap();
    }
    let o = run(&args(&["--resume"]));
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        e.contains("the disk is full") && e.contains("No space left"),
        "{e}"
    );
    assert!(e.contains("state.safetensors"), "{e}");
    assert_eq!(
        std::fs::read(b.join("state.safetensors")).unwrap(),
        state,
        "the last good checkpoint changed"
    );
    Reader::open(&b.join("state.safetensors")).unwrap();
    assert_eq!(temp_files(&b), 0, "a temp file was left on the full disk");
    // with space again, the run continues to its end
    std::fs::remove_file(&filler).unwrap();
    ok(&args(&["--resume"]));
    ModelFile::load(&b.join("student.safetensors")).unwrap();
    drop(_guard);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_drops_a_cut_loss_line_and_stale_temp_files() {
    let d = tmp("cut-log");
    let (a, b) = (d.join("straight"), d.join("cut"));
    ok(&tiny(&a, &[]));
    ok(&tiny(&b, &["--stop-after", "9"]));
    // as a kill in the middle of a write leaves them: losses beyond the state, a cut last
    // line (here "1,3,11,..." cut to "1,3,1", whose global step 1 looks old), and a temp file
    // of a state write
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(b.join("loss.csv"))
            .unwrap();
        f.write_all(b"1,2,10,0.4\n1,3,1").unwrap();
    }
    std::fs::write(b.join("state.safetensors.tmp999999"), b"half a state").unwrap();
    ok(&tiny(&b, &["--resume"]));
    assert_eq!(temp_files(&b), 0, "the stale temp file is still there");
    assert_eq!(
        std::fs::read_to_string(a.join("loss.csv")).unwrap(),
        std::fs::read_to_string(b.join("loss.csv")).unwrap()
    );
    assert_eq!(
        std::fs::read(a.join("student.safetensors")).unwrap(),
        std::fs::read(b.join("student.safetensors")).unwrap()
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A long `sample` saves its samples as it goes (OUT's .partial file, here after every chunk
/// of 4,096 rows): killed with SIGKILL once part is saved, the same command continues from
/// there and writes a file byte-identical to an uninterrupted run's, and removes the partial
/// file; a partial file of another job (other steps) is not continued.
#[test]
fn a_killed_sampling_job_continues_where_it_stopped() {
    let d = tmp("sample");
    let args = |out: &Path, steps: &str| {
        strings(&[
            "sample",
            "--model",
            "exact:toy:ring8",
            "--steps",
            steps,
            "--n",
            "40000",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let whole = d.join("whole.safetensors");
    ok(&args(&whole, "256"));
    let cut = d.join("cut.safetensors");
    let partial = d.join("cut.partial.safetensors");
    let mut child = bin()
        .args(args(&cut, "256"))
        .env("TRACT_SAMPLE_SAVE_S", "0")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !partial.exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists(), "a partial file after the first chunk");
    assert!(
        !cut.exists(),
        "killed before the end (a faster machine? more --n)"
    );
    let o = run(&args(&cut, "256"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("continuing from"), "{err}");
    // the plan counts what is left, not the whole job
    let done: usize = err
        .split("continuing from ")
        .nth(1)
        .and_then(|r| r.split(": ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let left = 40000 - done;
    assert!(
        err.contains(&format!(
            ": {} network evaluations for the {left} still to make",
            left * 256
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&cut).unwrap(), std::fs::read(&whole).unwrap());
    assert!(!partial.exists(), "the partial file is removed at the end");

    // a partial file of another job: said, and not continued
    std::fs::copy(d.join("whole.safetensors"), &partial).unwrap();
    let o = run(&args(&cut, "64"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("partial file of another sampling job"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
