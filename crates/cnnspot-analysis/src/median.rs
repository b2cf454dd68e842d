//! Median filters. Edges are handled by **replication** (the nearest pixel
//! inside the image is repeated, as `scipy.ndimage.median_filter(mode=
//! "nearest")` and OpenCV's `BORDER_REPLICATE` do), so the output has the
//! size of the input.

use image::RgbImage;

fn check_size(size: usize) {
    assert!(
        size % 2 == 1,
        "median filter size must be odd (3, 5, ...), got {size}"
    );
}

/// The median filter of each channel of `img` over a `size` x `size`
/// window (odd `size`: 3 and 5 are the usual ones), with replicated edges.
/// The median of an odd number of samples is one of them, so the output is
/// exact in `u8`.
///
/// # Panics
/// When `size` is even or zero (a programming error, not an input error).
pub fn median_filter(img: &RgbImage, size: usize) -> RgbImage {
    check_size(size);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = RgbImage::new(img.width(), img.height());
    if w == 0 || h == 0 {
        return out;
    }
    let r = size / 2;
    let src = img.as_raw();
    let dst: &mut [u8] = &mut out;
    let mut window = Vec::with_capacity(size * size);
    let mid = size * size / 2;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                window.clear();
                for dy in 0..size {
                    let sy = (y + dy).saturating_sub(r).min(h - 1);
                    let row = sy * w;
                    for dx in 0..size {
                        let sx = (x + dx).saturating_sub(r).min(w - 1);
                        window.push(src[(row + sx) * 3 + c]);
                    }
                }
                let (_, m, _) = window.select_nth_unstable(mid);
                dst[(y * w + x) * 3 + c] = *m;
            }
        }
    }
    out
}

/// The median filter of one `width` x `height` plane (row-major), over a
/// `size` x `size` window with replicated edges. NaNs sort after every
/// number (`f32::total_cmp`).
///
/// # Panics
/// When `size` is even or zero, or `plane.len() != width * height`.
pub fn median_filter_plane(plane: &[f32], width: usize, height: usize, size: usize) -> Vec<f32> {
    check_size(size);
    assert_eq!(plane.len(), width * height, "plane size mismatch");
    let mut out = vec![0f32; plane.len()];
    if width == 0 || height == 0 {
        return out;
    }
    let r = size / 2;
    let mid = size * size / 2;
    let mut window = Vec::with_capacity(size * size);
    for y in 0..height {
        for x in 0..width {
            window.clear();
            for dy in 0..size {
                let sy = (y + dy).saturating_sub(r).min(height - 1);
                for dx in 0..size {
                    let sx = (x + dx).saturating_sub(r).min(width - 1);
                    window.push(plane[sy * width + sx]);
                }
            }
            let (_, m, _) = window.select_nth_unstable_by(mid, f32::total_cmp);
            out[y * width + x] = *m;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_edges_3x3() {
        // 3x3 plane:      padded (replicate):
        // 1 2 3           1 1 2 3 3
        // 4 5 6           1 1 2 3 3
        // 7 8 90          4 4 5 6 6 ...
        let p = [1., 2., 3., 4., 5., 6., 7., 8., 90.];
        let m = median_filter_plane(&p, 3, 3, 3);
        // (0,0): {1,1,2,1,1,2,4,4,5} -> sorted 1,1,1,1,2,2,4,4,5 -> 2
        // (x1,y0): {1,2,3,1,2,3,4,5,6} -> 3; (x1,y1): all nine -> 5
        // (x0,y2): {4,4,5,7,7,8,7,7,8} -> 7; (x1,y2): {4,5,6,7,8,90,7,8,90} -> 7
        // (x2,y2): {5,6,6,8,90,90,8,90,90} -> 8
        assert_eq!(m, vec![2., 3., 3., 4., 5., 6., 7., 7., 8.]);
    }
}
