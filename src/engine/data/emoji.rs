//! `emoji[:FONT][,SIZE]`: colour images of the Unicode emoji, read from the colour bitmaps of
//! Debian's `fonts-noto-color-emoji` (Noto Color Emoji, Apache-2.0: 136x128 PNGs in the font's
//! CBDT table). Every emoji of the Unicode list (`emojis` crate, CLDR order, each skin tone
//! too) that the font draws, found through its character map or, for sequences (flags, ZWJ
//! sequences, skin tones), its GSUB ligatures; composited on white, padded to a square, scaled
//! to SIZE x SIZE (default 32), RGB in [-1, 1]. Labels: the Unicode emoji group. Every 10th
//! emoji in that order is held out (the test split); the rest are the training set.

use std::collections::HashMap;
use std::path::Path;

use skrifa::raw::tables::gsub::SubstitutionSubtables;
use skrifa::raw::{FontRef, TableProvider};
use skrifa::{GlyphId, MetadataProvider};

use super::idx::ImageSet;
use crate::{Error, Result};

/// Where Debian's fonts-noto-color-emoji puts the font.
pub const NOTO_EMOJI: &str = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";

/// The labels: the Unicode emoji groups (CLDR's `Component` group, skin-tone swatches and hair
/// parts, is not in the `emojis` list).
pub const GROUPS: [&str; 9] = [
    "smileys & emotion",
    "people & body",
    "animals & nature",
    "food & drink",
    "travel & places",
    "activities",
    "objects",
    "symbols",
    "flags",
];

/// Every `HOLD_OUT`-th emoji (index % HOLD_OUT == HOLD_OUT - 1) is in the test split.
pub const HOLD_OUT: usize = 10;

/// What `emoji` takes after the colon.
#[derive(Clone, Debug, PartialEq)]
pub struct EmojiSpec {
    pub font: String,
    pub size: usize,
}

impl EmojiSpec {
    /// `""`, `FONT`, `SIZE`, `FONT,SIZE` (a FONT that is a number must contain a `/`).
    pub fn parse(rest: &str) -> Result<EmojiSpec> {
        let mut spec = EmojiSpec {
            font: NOTO_EMOJI.into(),
            size: 32,
        };
        let (font, size) = match rest.rsplit_once(',') {
            Some((f, s)) => (f, Some(s)),
            None if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) => {
                ("", Some(rest))
            }
            None => (rest, None),
        };
        if !font.is_empty() {
            spec.font = font.into();
        }
        if let Some(s) = size {
            match s.parse::<usize>() {
                Ok(n) if (8..=128).contains(&n) && n % 4 == 0 => spec.size = n,
                _ => {
                    return Err(Error::input(format!(
                        "emoji data: size '{s}' is not a multiple of 4 from 8 to 128 (e.g. emoji,64 or emoji:FONT,64)"
                    )));
                }
            }
        }
        Ok(spec)
    }
}

fn group_label(g: emojis::Group) -> u8 {
    use emojis::Group::*;
    match g {
        SmileysAndEmotion => 0,
        PeopleAndBody => 1,
        AnimalsAndNature => 2,
        FoodAndDrink => 3,
        TravelAndPlaces => 4,
        Activities => 5,
        Objects => 6,
        Symbols => 7,
        Flags => 8,
    }
}

/// The font's ligatures: component glyphs (first one included) -> the ligature glyph.
fn ligatures(font: &FontRef) -> HashMap<Vec<u16>, u16> {
    let mut map = HashMap::new();
    let Ok(gsub) = font.gsub() else {
        return map;
    };
    let Ok(list) = gsub.lookup_list() else {
        return map;
    };
    for lookup in list.lookups().iter().flatten() {
        let Ok(SubstitutionSubtables::Ligature(subs)) = lookup.subtables() else {
            continue;
        };
        for sub in subs.iter().flatten() {
            let Ok(cov) = sub.coverage() else { continue };
            for (first, set) in cov.iter().zip(sub.ligature_sets().iter()) {
                let Ok(set) = set else { continue };
                for lig in set.ligatures().iter().flatten() {
                    let mut key = vec![first.to_u16()];
                    key.extend(lig.component_glyph_ids().iter().map(|g| g.get().to_u16()));
                    map.entry(key).or_insert(lig.ligature_glyph().to_u16());
                }
            }
        }
    }
    map
}

/// The glyph that draws `text` (one character, or a sequence the ligatures join), if any.
fn glyph_of(
    text: &str,
    cmap: &skrifa::charmap::Charmap,
    ligs: &HashMap<Vec<u16>, u16>,
) -> Option<GlyphId> {
    // the variation selector FE0F (emoji presentation) is dropped: the font draws colour anyway
    let chars: Vec<char> = text.chars().filter(|&c| c != '\u{FE0F}').collect();
    let glyphs: Vec<u16> = chars
        .iter()
        .map(|&c| cmap.map(c).map(|g| g.to_u32() as u16))
        .collect::<Option<_>>()?;
    match glyphs.len() {
        0 => None,
        1 => Some(GlyphId::new(glyphs[0] as u32)),
        _ => ligs.get(&glyphs).map(|&g| GlyphId::new(g as u32)),
    }
}

/// The emoji the font draws, in CLDR order with each skin tone after its default:
/// (text, group label, glyph).
fn catalogue(font: &FontRef) -> Vec<(&'static str, u8, GlyphId)> {
    let cmap = font.charmap();
    let ligs = ligatures(font);
    let mut out = vec![];
    for e in emojis::iter() {
        let tones: Vec<&'static emojis::Emoji> = match e.skin_tones() {
            Some(t) => t.collect(),
            None => vec![e],
        };
        for t in tones {
            let label = group_label(t.group());
            if let Some(g) = glyph_of(t.as_str(), &cmap, &ligs) {
                out.push((t.as_str(), label, g));
            }
        }
    }
    out
}

/// A PNG bitmap composited on white, centred in a square, scaled to `size`: RGB in [-1, 1],
/// channel-major [3, size, size].
fn to_pixels(png: &[u8], size: usize, what: &str) -> Result<Vec<f32>> {
    let img = image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .map_err(|e| Error::input(format!("emoji {what}: its bitmap does not decode ({e})")))?
        .to_rgba8();
    let (w, h) = img.dimensions();
    let side = w.max(h);
    let mut square = image::RgbImage::from_pixel(side, side, image::Rgb([255, 255, 255]));
    let (x0, y0) = ((side - w) / 2, (side - h) / 2);
    for (x, y, p) in img.enumerate_pixels() {
        let a = p[3] as f32 / 255.0;
        let q = square.get_pixel_mut(x0 + x, y0 + y);
        for c in 0..3 {
            q[c] = (p[c] as f32 * a + 255.0 * (1.0 - a)).round() as u8;
        }
    }
    let small = image::imageops::resize(
        &square,
        size as u32,
        size as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut out = vec![0f32; 3 * size * size];
    for (x, y, p) in small.enumerate_pixels() {
        for c in 0..3 {
            out[c * size * size + y as usize * size + x as usize] = p[c] as f32 / 127.5 - 1.0;
        }
    }
    Ok(out)
}

/// The training split (`train`) or the held-out one, with group labels.
pub fn load(spec: &EmojiSpec, train: bool) -> Result<ImageSet> {
    let path = Path::new(&spec.font);
    if !path.exists() {
        return Err(Error::input(format!(
            "emoji: {} not found: install Debian's fonts-noto-color-emoji (apt-get install fonts-noto-color-emoji) or give emoji:FONT, a colour emoji font with CBDT bitmaps",
            spec.font
        )));
    }
    let bytes = crate::engine::error::read_file(path)?;
    let font = FontRef::new(&bytes)
        .map_err(|e| Error::file(path, format!("not a font this reader takes ({e})")))?;
    let strikes = skrifa::bitmap::BitmapStrikes::new(&font);
    let Some(strike) = strikes.iter().max_by(|a, b| a.ppem().total_cmp(&b.ppem())) else {
        return Err(Error::file(
            path,
            "has no colour bitmaps (CBDT); expected Noto Color Emoji (fonts-noto-color-emoji)",
        ));
    };
    let size = spec.size;
    let (mut pixels, mut labels, mut n) = (vec![], vec![], 0);
    for (i, (text, label, glyph)) in catalogue(&font).into_iter().enumerate() {
        if (i % HOLD_OUT == HOLD_OUT - 1) == train {
            continue;
        }
        let Some(g) = strike.get(glyph) else { continue };
        let skrifa::bitmap::BitmapData::Png(png) = g.data else {
            continue;
        };
        pixels.extend(to_pixels(png, size, text)?);
        labels.push(label);
        n += 1;
    }
    if n == 0 {
        return Err(Error::file(
            path,
            "draws none of the Unicode emoji as a colour bitmap; expected Noto Color Emoji (fonts-noto-color-emoji)",
        ));
    }
    Ok(ImageSet {
        n,
        c: 3,
        h: size,
        w: size,
        pixels,
        labels: Some(labels),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let d = |font: &str, size| EmojiSpec {
            font: font.into(),
            size,
        };
        assert_eq!(EmojiSpec::parse("").unwrap(), d(NOTO_EMOJI, 32));
        assert_eq!(EmojiSpec::parse("64").unwrap(), d(NOTO_EMOJI, 64));
        assert_eq!(EmojiSpec::parse("/f.ttf").unwrap(), d("/f.ttf", 32));
        assert_eq!(EmojiSpec::parse("/f.ttf,16").unwrap(), d("/f.ttf", 16));
        for bad in ["30", "4", "/f.ttf,x", "256"] {
            let e = EmojiSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("multiple of 4 from 8 to 128"), "{bad}: {e}");
        }
    }

    /// A red pixel half covered stays red on white: 50% alpha over white is (255, 128, 128).
    #[test]
    fn bitmaps_are_composited_on_white_in_rgb_order() {
        let mut img = image::RgbaImage::from_pixel(2, 2, image::Rgba([255, 0, 0, 128]));
        img.put_pixel(1, 1, image::Rgba([0, 0, 255, 255]));
        let mut png = vec![];
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let p = to_pixels(&png, 2, "test").unwrap();
        let px = |c: usize, y: usize, x: usize| ((p[c * 4 + y * 2 + x] + 1.0) * 127.5).round();
        assert_eq!(
            [px(0, 0, 0), px(1, 0, 0), px(2, 0, 0)],
            [255.0, 127.0, 127.0]
        );
        assert_eq!([px(0, 1, 1), px(1, 1, 1), px(2, 1, 1)], [0.0, 0.0, 255.0]);
    }
}

/// Against the installed font (Debian's fonts-noto-color-emoji; `scripts/test.sh` installs it
/// when root and then sets TRACT_REQUIRE_EMOJI=1, which turns a missing font into a failure).
#[cfg(test)]
mod font_tests {
    use super::*;

    fn font() -> Option<EmojiSpec> {
        if Path::new(NOTO_EMOJI).exists() {
            return Some(EmojiSpec::parse("16").unwrap());
        }
        assert!(
            std::env::var_os("TRACT_REQUIRE_EMOJI").is_none(),
            "{NOTO_EMOJI} missing"
        );
        eprintln!("skipped: {NOTO_EMOJI} missing (apt-get install fonts-noto-color-emoji)");
        None
    }

    #[test]
    fn the_noto_font_gives_thousands_of_labelled_colour_emoji() {
        let Some(spec) = font() else { return };
        let train = load(&spec, true).unwrap();
        let test = load(&spec, false).unwrap();
        let all = train.n + test.n;
        eprintln!("emoji: {} train + {} held out", train.n, test.n);
        // flags, ZWJ sequences and skin tones come through the ligatures: without them the
        // font gives about 1,400 single characters
        assert!(all > 3_000, "{all}");
        assert_eq!(test.n, all / HOLD_OUT);
        assert_eq!((train.c, train.h, train.w), (3, 16, 16));
        let mut per_group = [0usize; 9];
        for &l in train.labels.as_ref().unwrap() {
            per_group[l as usize] += 1;
        }
        assert!(per_group.iter().all(|&k| k >= 50), "{per_group:?}");
        let mut held = [0usize; 9];
        for &l in test.labels.as_ref().unwrap() {
            held[l as usize] += 1;
        }
        eprintln!("per group: train {per_group:?}, held out {held:?}");
        // the first is U+1F600 grinning face: white corners, a yellow face
        let img = train.image(0);
        let px = |c: usize, y: usize, x: usize| img[c * 256 + y * 16 + x];
        for c in 0..3 {
            assert!(px(c, 0, 0) > 0.99, "corner channel {c}: {}", px(c, 0, 0));
        }
        let (r, g, b) = (px(0, 4, 8), px(1, 4, 8), px(2, 4, 8));
        assert!(
            r > 0.8 && g > 0.3 && b < 0.0,
            "forehead ({r}, {g}, {b}) is not yellow"
        );
        assert!(img.iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn a_font_without_colour_bitmaps_is_refused() {
        let dir = std::env::temp_dir().join(format!("tract-emoji-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("x.ttf");
        std::fs::write(&junk, b"not a font at all").unwrap();
        let e = load(&EmojiSpec::parse(junk.to_str().unwrap()).unwrap(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.ttf") && e.contains("not a font"), "{e}");
        let e = load(&EmojiSpec::parse("/nonexistent/e.ttf").unwrap(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fonts-noto-color-emoji"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
