//! The seam between ESP framing and the AEAD that protects it.
//!
//! [`EspTransform`](crate::EspTransform) frames a packet and hands the
//! cipher the ESP packet in place, laid out as on the wire. The built-in
//! [`Aead`] is one implementation; the kernel module adds one on the
//! kernel's crypto API (`rfc4106(gcm(aes))`), which wants the RFC 4106 AAD
//! and IV contiguous in front of the text. [`AadWindow`] arranges that in
//! place, the way Linux's esp4/esp6 do for ESN.

use crate::aead::{Aead, ICV_LEN, IV_LEN};
use crate::esp::ESP_HDR_LEN;
use crate::{Error, Result};

/// An AEAD that works in place on an ESP packet inside `buf`:
///
/// ```text
/// esp: SPI(4) | seq_lo(4) | IV(8) | text (text_len bytes) | ICV(16)
/// ```
///
/// `text` is payload ‖ padding ‖ pad length ‖ next header. `seq_hi` is the
/// high half of the extended sequence number, `None` without ESN. The AAD
/// is SPI ‖ seq_lo, or SPI ‖ seq_hi ‖ seq_lo with ESN (RFC 4106 §5,
/// RFC 7634 §2.1); the nonce is salt ‖ IV.
pub trait EspCipher {
    /// Encrypts the text in place and writes the ICV after it.
    fn seal(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> Result<()>;
    /// Verifies the ICV and decrypts the text in place. On
    /// [`Error::AuthFailed`] the text is unspecified (an in-place kernel
    /// cipher decrypts while it hashes); the caller drops the packet.
    fn open(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> Result<()>;
}

fn array<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N]> {
    buf.get(off..off.checked_add(N).ok_or(Error::BadLength)?)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Truncated)
}

/// The AAD of RFC 4106 §5 from the ESP header at `esp`.
fn aad(buf: &[u8], esp: usize, seq_hi: Option<u32>) -> Result<([u8; 12], usize)> {
    let [s0, s1, s2, s3, l0, l1, l2, l3]: [u8; ESP_HDR_LEN] = array(buf, esp)?;
    Ok(match seq_hi {
        Some(hi) => {
            let [h0, h1, h2, h3] = hi.to_be_bytes();
            ([s0, s1, s2, s3, h0, h1, h2, h3, l0, l1, l2, l3], 12)
        }
        None => ([s0, s1, s2, s3, l0, l1, l2, l3, 0, 0, 0, 0], 8),
    })
}

/// Offsets in the ESP packet at `esp`: IV, start and end of the text, end
/// of the ICV; all checked against `buf`.
struct Layout {
    iv: usize,
    start: usize,
    end: usize,
    icv_end: usize,
}

fn layout(buf: &[u8], esp: usize, text_len: usize) -> Result<Layout> {
    let iv = esp.checked_add(ESP_HDR_LEN).ok_or(Error::BadLength)?;
    let start = iv.checked_add(IV_LEN).ok_or(Error::BadLength)?;
    let end = start.checked_add(text_len).ok_or(Error::BadLength)?;
    let icv_end = end.checked_add(ICV_LEN).ok_or(Error::BadLength)?;
    if icv_end > buf.len() {
        return Err(Error::Truncated);
    }
    Ok(Layout { iv, start, end, icv_end })
}

impl EspCipher for Aead {
    fn seal(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> Result<()> {
        let l = layout(buf, esp, text_len)?;
        let (aad, aad_len) = aad(buf, esp, seq_hi)?;
        let iv: [u8; IV_LEN] = array(buf, l.iv)?;
        let text = buf.get_mut(l.start..l.end).ok_or(Error::Truncated)?;
        let tag = Aead::seal(self, &iv, aad.get(..aad_len).unwrap_or(&[]), text)?;
        let icv = buf
            .get_mut(l.end..l.icv_end)
            .and_then(|d| <&mut [u8; ICV_LEN]>::try_from(d).ok())
            .ok_or(Error::Truncated)?;
        *icv = tag;
        Ok(())
    }

    fn open(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>) -> Result<()> {
        let l = layout(buf, esp, text_len)?;
        let (aad, aad_len) = aad(buf, esp, seq_hi)?;
        let iv: [u8; IV_LEN] = array(buf, l.iv)?;
        let icv: [u8; ICV_LEN] = array(buf, l.end)?;
        let text = buf.get_mut(l.start..l.end).ok_or(Error::Truncated)?;
        Aead::open(self, &iv, aad.get(..aad_len).unwrap_or(&[]), text, &icv).map_err(Error::from)
    }
}

/// The 8 bytes at `off`: the 4 in front of the ESP header and its SPI while
/// an [`AadWindow`] is open. Whole-array moves keep this free of panicking
/// slice copies.
fn window(buf: &mut [u8], off: usize) -> Result<&mut [u8; 8]> {
    let end = off.checked_add(8).ok_or(Error::BadLength)?;
    buf.get_mut(off..end)
        .and_then(|w| <&mut [u8; 8]>::try_from(w).ok())
        .ok_or(Error::Truncated)
}

/// The ESP packet at `esp` rearranged in place so that AAD ‖ IV ‖ text ‖
/// ICV are contiguous, as the Linux crypto API's `rfc4106` and
/// `rfc7539esp` templates take them (with `assoclen` covering AAD ‖ IV).
///
/// Without ESN the wire layout already is that. With ESN the AAD needs
/// seq_hi between SPI and seq_lo: like Linux's `esp_output_set_extra`, the
/// SPI moves 4 bytes back into the (already built) header in front, seq_hi
/// takes its place, and [`restore`](Self::restore) puts both back. Always
/// call `restore`, whatever the cipher returned.
#[derive(Debug)]
#[must_use = "the packet stays rearranged until restore() is called"]
pub struct AadWindow {
    saved: Option<[u8; 4]>,
    /// Offset in `buf` where the AAD starts.
    pub start: usize,
    /// AAD ‖ IV length: the crypto API's `assoclen` (16, or 20 with ESN).
    pub assoclen: usize,
}

impl AadWindow {
    /// Rearranges `buf` for the packet at `esp`; needs 4 bytes in front of
    /// the ESP header with ESN (an IP header is always there).
    pub fn open(buf: &mut [u8], esp: usize, seq_hi: Option<u32>) -> Result<Self> {
        let hdr: [u8; ESP_HDR_LEN] = array(buf, esp)?;
        let Some(hi) = seq_hi else {
            return Ok(AadWindow { saved: None, start: esp, assoclen: ESP_HDR_LEN + IV_LEN });
        };
        let front = esp.checked_sub(4).ok_or(Error::NoHeadroom)?;
        let w = window(buf, front)?;
        let [f0, f1, f2, f3, ..] = *w;
        let [h0, h1, h2, h3] = hi.to_be_bytes();
        let [s0, s1, s2, s3, ..] = hdr;
        *w = [s0, s1, s2, s3, h0, h1, h2, h3];
        Ok(AadWindow { saved: Some([f0, f1, f2, f3]), start: front, assoclen: 4 + ESP_HDR_LEN + IV_LEN })
    }

    /// Undoes [`open`](Self::open).
    pub fn restore(self, buf: &mut [u8]) {
        let Some([f0, f1, f2, f3]) = self.saved else { return };
        let Ok(w) = window(buf, self.start) else { return };
        let [s0, s1, s2, s3, ..] = *w;
        *w = [f0, f1, f2, f3, s0, s1, s2, s3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::AeadAlg;

    /// A cipher that only sees the contiguous AAD ‖ IV ‖ text ‖ ICV
    /// window, as the kernel's does, implemented on the built-in AEAD.
    struct Contiguous(Aead);

    impl Contiguous {
        fn run(&self, buf: &mut [u8], esp: usize, text_len: usize, seq_hi: Option<u32>, enc: bool) -> Result<()> {
            let w = AadWindow::open(buf, esp, seq_hi)?;
            let r = (|| -> Result<()> {
                let win = buf.get_mut(w.start..).ok_or(Error::Truncated)?;
                let aad_len = w.assoclen - IV_LEN;
                let (aad, rest) = win.split_at_mut(aad_len);
                let (iv, rest) = rest.split_at_mut(IV_LEN);
                let iv: [u8; IV_LEN] = (&*iv).try_into().map_err(|_| Error::Truncated)?;
                let (text, rest) = rest.split_at_mut(text_len);
                let icv = rest.get_mut(..ICV_LEN).ok_or(Error::Truncated)?;
                if enc {
                    icv.copy_from_slice(&self.0.seal(&iv, aad, text).map_err(Error::from)?);
                    Ok(())
                } else {
                    let tag: [u8; ICV_LEN] = (&*icv).try_into().map_err(|_| Error::Truncated)?;
                    self.0.open(&iv, aad, text, &tag).map_err(Error::from)
                }
            })();
            w.restore(buf);
            r
        }
    }

    impl EspCipher for Contiguous {
        fn seal(&self, buf: &mut [u8], esp: usize, n: usize, hi: Option<u32>) -> Result<()> {
            self.run(buf, esp, n, hi, true)
        }
        fn open(&self, buf: &mut [u8], esp: usize, n: usize, hi: Option<u32>) -> Result<()> {
            self.run(buf, esp, n, hi, false)
        }
    }

    fn packet() -> [u8; 128] {
        let mut b = [0u8; 128];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(7).wrapping_add(3);
        }
        b
    }

    #[test]
    fn contiguous_window_matches_builtin_with_and_without_esn() {
        let keymat = [0x42u8; 20];
        let a = Aead::new(AeadAlg::Aes128Gcm, &keymat).unwrap();
        let c = Contiguous(Aead::new(AeadAlg::Aes128Gcm, &keymat).unwrap());
        for hi in [None, Some(0), Some(0xdead_beef)] {
            let esp = 20;
            let mut x = packet();
            let mut y = x;
            EspCipher::seal(&a, &mut x, esp, 64, hi).unwrap();
            EspCipher::seal(&c, &mut y, esp, 64, hi).unwrap();
            assert_eq!(x, y, "seq_hi {hi:?}");
            // The header in front and the ESP header are back in place.
            assert_eq!(x[..esp + 16], packet()[..esp + 16]);
            assert_ne!(x[esp + 16..esp + 80], packet()[esp + 16..esp + 80]);
            EspCipher::open(&c, &mut y, esp, 64, hi).unwrap();
            assert_eq!(y[..esp + 80], packet()[..esp + 80]);
            let mut z = x;
            z[esp + 20] ^= 1;
            assert_eq!(EspCipher::open(&a, &mut z, esp, 64, hi), Err(Error::AuthFailed));
            let wrong_hi = hi.map(|h| h ^ 1).or(Some(1));
            let mut z = x;
            assert_eq!(EspCipher::open(&c, &mut z, esp, 64, wrong_hi), Err(Error::AuthFailed));
            assert_eq!(z[..esp + 16], x[..esp + 16], "restored after a failure");
        }
    }

    #[test]
    fn window_needs_room_in_front_only_with_esn() {
        let mut b = [0u8; 64];
        let w = AadWindow::open(&mut b, 0, None).unwrap();
        assert_eq!((w.start, w.assoclen), (0, 16));
        w.restore(&mut b);
        assert_eq!(AadWindow::open(&mut b, 2, Some(1)).unwrap_err(), Error::NoHeadroom);
        assert_eq!(AadWindow::open(&mut b, 60, None).unwrap_err(), Error::Truncated);
        let mut a = [0u8; 48];
        assert_eq!(
            EspCipher::seal(&Aead::new(AeadAlg::Aes128Gcm, &[0; 20]).unwrap(), &mut a, 4, 16, None),
            Err(Error::Truncated)
        );
    }
}
