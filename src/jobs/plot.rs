//! Pictures without a font or plotting dependency: RGB canvases, a 5x7 bitmap font,
//! scatter panels and loss curves, written as PNG.

use std::path::Path;

use crate::{Error, Result};

pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<[u8; 3]>,
}

const GLYPHS: &str = "\
A 01110100011000111111100011000110001
B 11110100011000111110100011000111110
C 01110100011000010000100001000101110
D 11110100011000110001100011000111110
E 11111100001000011110100001000011111
F 11111100001000011110100001000010000
G 01110100011000010111100011000101111
H 10001100011000111111100011000110001
I 01110001000010000100001000010001110
J 00111000100001000010000101001001100
K 10001100101010011000101001001010001
L 10000100001000010000100001000011111
M 10001110111010110101100011000110001
N 10001100011100110101100111000110001
O 01110100011000110001100011000101110
P 11110100011000111110100001000010000
Q 01110100011000110001101011001001101
R 11110100011000111110101001001010001
S 01111100001000001110000010000111110
T 11111001000010000100001000010000100
U 10001100011000110001100011000101110
V 10001100011000110001100010101000100
W 10001100011000110101101011010101010
X 10001100010101000100010101000110001
Y 10001100010101000100001000010000100
Z 11111000010001000100010001000011111
0 01110100011001110101110011000101110
1 00100011000010000100001000010001110
2 01110100010000100010001000100011111
3 11111000100010000010000011000101110
4 00010001100101010010111110001000010
5 11111100001111000001000011000101110
6 00110010001000011110100011000101110
7 11111000010001000100010000100001000
8 01110100011000101110100011000101110
9 01110100011000101111000010001001100
. 00000000000000000000000000110001100
, 00000000000000000000001100010001000
: 00000011000110000000011000110000000
- 00000000000000011111000000000000000
+ 00000001000010011111001000010000000
= 00000000001111100000111110000000000
( 00010001000100001000010000010000010
) 01000001000001000010000100010001000
/ 00001000010001000100010001000010000
% 11001110010001000100010001001110011
x 00000000001000101010001000101010001
_ 00000000000000000000000000000011111
";

fn glyph(c: char) -> Option<[u8; 35]> {
    let c = if c.is_ascii_lowercase() && c != 'x' {
        c.to_ascii_uppercase()
    } else {
        c
    };
    for line in GLYPHS.lines() {
        let mut it = line.split(' ');
        let (k, bits) = (it.next()?, it.next()?);
        if k.starts_with(c) {
            let mut g = [0u8; 35];
            for (i, b) in bits.bytes().enumerate().take(35) {
                g[i] = b - b'0';
            }
            return Some(g);
        }
    }
    None
}

impl Canvas {
    pub fn new(w: usize, h: usize, bg: [u8; 3]) -> Self {
        Canvas {
            w,
            h,
            px: vec![bg; w * h],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }

    /// Blend a color in with opacity a.
    pub fn blend(&mut self, x: i64, y: i64, c: [u8; 3], a: f32) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let p = &mut self.px[y as usize * self.w + x as usize];
            for i in 0..3 {
                p[i] = (p[i] as f32 * (1.0 - a) + c[i] as f32 * a).round() as u8;
            }
        }
    }

    pub fn rect(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }

    pub fn frame(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        self.rect(x0, y0, w, 1, c);
        self.rect(x0, y0 + h - 1, w, 1, c);
        self.rect(x0, y0, 1, h, c);
        self.rect(x0 + w - 1, y0, 1, h, c);
    }

    pub fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let t = i as f64 / n as f64;
            self.set(
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
                c,
            );
        }
    }

    /// Text with the 5x7 font at integer scale; returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            if let Some(g) = glyph(ch) {
                for r in 0..7 {
                    for col in 0..5 {
                        if g[r * 5 + col] == 1 {
                            self.rect(
                                cx + col as i64 * scale,
                                y + r as i64 * scale,
                                scale,
                                scale,
                                c,
                            );
                        }
                    }
                }
            }
            cx += 6 * scale;
        }
        cx - x
    }

    /// Draw an RGBA8 grid image (`gw` x `gh`, as `kernels::reference::rgba_grid` packs it)
    /// at (x0, y0), each pixel `scale` x `scale`; `tile_gap = Some((tile_w, gap))` leaves
    /// `gap` pixels between tiles of `tile_w` source columns.
    #[allow(clippy::too_many_arguments)]
    pub fn blit_rgba(
        &mut self,
        px: &[u32],
        gw: usize,
        gh: usize,
        scale: usize,
        x0: usize,
        y0: usize,
        tile_gap: Option<(usize, usize)>,
    ) {
        let (tile_w, gap) = tile_gap.unwrap_or((gw.max(1), 0));
        for y in 0..gh * scale {
            for x in 0..gw * scale {
                let sx = x / scale;
                let p = px[(y / scale) * gw + sx];
                let cx = x0 + x + (sx / tile_w) * gap;
                self.px[(y0 + y) * self.w + cx] = [
                    (p & 255) as u8,
                    ((p >> 8) & 255) as u8,
                    ((p >> 16) & 255) as u8,
                ];
            }
        }
    }

    pub fn text_width(s: &str, scale: i64) -> i64 {
        s.chars().count() as i64 * 6 * scale
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut wr = enc
                .write_header()
                .map_err(|e| Error::file(path, format!("PNG encoding: {e}")))?;
            let flat: Vec<u8> = self.px.iter().flat_map(|p| *p).collect();
            wr.write_image_data(&flat)
                .map_err(|e| Error::file(path, format!("PNG encoding: {e}")))?;
        }
        crate::engine::error::write_atomic(path, &bytes)
    }
}

pub struct Panel<'a> {
    pub title: String,
    pub subtitle: String,
    /// [n, 2] points (the first two coordinates of each sample).
    pub points: &'a [f32],
    pub dim: usize,
}

/// Side-by-side scatter plots of 2-D samples (first two coordinates), same axes.
pub fn scatter_panels(panels: &[Panel], extent: f32, path: &Path) -> Result<()> {
    let (pw, ph, pad, head) = (300i64, 300i64, 12i64, 44i64);
    let w = pad + panels.len() as i64 * (pw + pad);
    let h = head + ph + pad;
    let mut cv = Canvas::new(w as usize, h as usize, [255, 255, 255]);
    for (i, p) in panels.iter().enumerate() {
        let x0 = pad + i as i64 * (pw + pad);
        let y0 = head;
        cv.rect(x0, y0, pw, ph, [246, 246, 250]);
        // axes through the origin
        cv.rect(x0, y0 + ph / 2, pw, 1, [220, 220, 228]);
        cv.rect(x0 + pw / 2, y0, 1, ph, [220, 220, 228]);
        for pt in p.points.chunks(p.dim) {
            let (x, y) = (pt[0], if p.dim > 1 { pt[1] } else { 0.0 });
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let sx = x0 as f32 + (x / extent * 0.5 + 0.5) * pw as f32;
            let sy = y0 as f32 + (0.5 - y / extent * 0.5) * ph as f32;
            if sx >= x0 as f32 && sx < (x0 + pw) as f32 && sy >= y0 as f32 && sy < (y0 + ph) as f32
            {
                cv.blend(sx as i64, sy as i64, [30, 70, 160], 0.35);
            }
        }
        cv.frame(x0, y0, pw, ph, [150, 150, 160]);
        let tw = Canvas::text_width(&p.title, 2);
        cv.text(x0 + (pw - tw) / 2, 6, &p.title, 2, [20, 20, 30]);
        let sw = Canvas::text_width(&p.subtitle, 1);
        cv.text(x0 + (pw - sw) / 2, 26, &p.subtitle, 1, [90, 90, 100]);
    }
    cv.save_png(path)
}

/// A loss curve (log10 scale), one color per phase, from `(phase, loss)` points in order.
pub fn loss_curve(points: &[(usize, f32)], title: &str, path: &Path) -> Result<()> {
    let (w, h, l, r, t, b) = (720i64, 360i64, 60i64, 16i64, 30i64, 30i64);
    let mut cv = Canvas::new(w as usize, h as usize, [255, 255, 255]);
    cv.text(l, 8, title, 2, [20, 20, 30]);
    let vals: Vec<f64> = points
        .iter()
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .map(|p| (p.1 as f64).log10())
        .collect();
    if vals.is_empty() {
        return cv.save_png(path);
    }
    let (mut lo, mut hi) = (
        vals.iter().cloned().fold(f64::MAX, f64::min),
        vals.iter().cloned().fold(f64::MIN, f64::max),
    );
    lo = lo.floor();
    hi = hi.ceil().max(lo + 1.0);
    let (pw, ph) = (w - l - r, h - t - b);
    cv.frame(l, t, pw, ph, [150, 150, 160]);
    let mut dec = lo;
    while dec <= hi {
        let y = t + ph - ((dec - lo) / (hi - lo) * ph as f64) as i64;
        cv.rect(l, y, pw, 1, [232, 232, 238]);
        cv.text(4, y - 3, &format!("1E{}", dec as i64), 1, [90, 90, 100]);
        dec += 1.0;
    }
    let colors = [
        [30, 70, 160],
        [200, 80, 30],
        [40, 140, 60],
        [150, 50, 150],
        [20, 140, 150],
        [120, 120, 20],
    ];
    let n = points.len().max(2) as f64;
    // smooth with a running mean so trends are visible
    let win = (points.len() / 200).max(1);
    let mut prev: Option<(f64, f64)> = None;
    for i in 0..points.len() {
        let lo_i = i.saturating_sub(win / 2);
        let hi_i = (i + win / 2 + 1).min(points.len());
        let seg: Vec<f64> = points[lo_i..hi_i]
            .iter()
            .filter(|p| p.1.is_finite() && p.1 > 0.0)
            .map(|p| p.1 as f64)
            .collect();
        if seg.is_empty() {
            continue;
        }
        let v = (seg.iter().sum::<f64>() / seg.len() as f64).log10();
        let x = l as f64 + i as f64 / (n - 1.0) * pw as f64;
        let y = (t + ph) as f64 - (v - lo) / (hi - lo) * ph as f64;
        let c = colors[points[i].0 % colors.len()];
        if let Some((px, py)) = prev {
            cv.line(px, py, x, y, c);
        }
        prev = Some((x, y));
        if i > 0 && points[i].0 != points[i - 1].0 {
            cv.rect(x as i64, t, 1, ph, [200, 200, 210]);
        }
    }
    cv.text(
        l,
        h - 20,
        "OPTIMIZER STEP (PHASES IN COLOR)",
        1,
        [90, 90, 100],
    );
    cv.save_png(path)
}

/// Images [n, c, h, w] (flattened) in [-1, 1] as one PNG grid with `cols` columns.
pub fn image_grid(
    samples: &[f32],
    shape: [usize; 3],
    cols: usize,
    scale: usize,
    path: &Path,
) -> Result<()> {
    let [c, h, w] = shape;
    let n = samples.len() / (c * h * w).max(1);
    let cols = cols.clamp(1, n.max(1));
    let px = crate::engine::kernels::reference::rgba_grid(samples, [n, c, h, w], cols, -1.0, 1.0);
    let (gw, gh) = (cols * w, n.div_ceil(cols).max(1) * h);
    let s = scale.max(1);
    let mut cv = Canvas::new(gw * s, gh * s, [0, 0, 0]);
    cv.blit_rgba(&px, gw, gh, s, 0, 0, None);
    cv.save_png(path)
}

/// Read a run's loss.csv into (phase, loss) points.
pub fn read_loss_csv(path: &Path) -> Vec<(usize, f32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.first()?.parse().ok()?, f.get(3)?.parse().ok()?))
        })
        .collect()
}

/// One bar of a bar chart: a mean with a spread (drawn as a whisker of +- spread).
pub struct Bar {
    pub label: String,
    pub mean: f64,
    pub spread: f64,
}

/// A horizontal bar chart: a row per bar, labels on the left, the value on the right.
pub fn bars(bars: &[Bar], title: &str, axis: &str, path: &Path) -> Result<()> {
    let label_w = bars
        .iter()
        .map(|b| Canvas::text_width(&b.label, 2))
        .max()
        .unwrap_or(0)
        .max(100) as usize
        + 24;
    let plot_w = 420usize;
    let row_h = 34usize;
    let top = 56usize;
    let w = label_w + plot_w + 150;
    let h = top + bars.len() * row_h + 40;
    let mut cv = Canvas::new(w, h, [255, 255, 255]);
    cv.text(12, 12, title, 2, [20, 20, 30]);
    cv.text(12, 36, axis, 1, [90, 90, 100]);
    let max = bars
        .iter()
        .map(|b| b.mean + b.spread)
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let x0 = label_w as i64;
    for (i, b) in bars.iter().enumerate() {
        let y = (top + i * row_h) as i64;
        cv.text(12, y + 8, &b.label, 2, [30, 30, 40]);
        let len = (b.mean.max(0.0) / max * plot_w as f64).round() as i64;
        cv.rect(x0, y + 4, len.max(1), row_h as i64 - 10, [70, 120, 200]);
        let (lo, hi) = (
            (b.mean - b.spread).max(0.0) / max * plot_w as f64,
            (b.mean + b.spread) / max * plot_w as f64,
        );
        let yc = (y + row_h as i64 / 2 - 1) as f64;
        cv.line(x0 as f64 + lo, yc, x0 as f64 + hi, yc, [20, 20, 20]);
        cv.line(
            x0 as f64 + lo,
            yc - 5.0,
            x0 as f64 + lo,
            yc + 5.0,
            [20, 20, 20],
        );
        cv.line(
            x0 as f64 + hi,
            yc - 5.0,
            x0 as f64 + hi,
            yc + 5.0,
            [20, 20, 20],
        );
        cv.text(
            x0 + plot_w as i64 + 12,
            y + 8,
            &format!("{:.4}", b.mean),
            2,
            [30, 30, 40],
        );
    }
    cv.line(
        x0 as f64,
        top as f64 - 4.0,
        x0 as f64,
        (top + bars.len() * row_h) as f64,
        [60, 60, 60],
    );
    cv.save_png(path)
}
