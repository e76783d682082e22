//! Piece lengths: the automatic choice and the check of a given one.

use crate::create::CreateError;
use crate::metainfo::MAX_PIECES;

/// The smallest piece length accepted (one block, 16 KiB).
pub const MIN_PIECE_LENGTH: u32 = 16 * 1024;

/// The largest piece length chosen automatically (16 MiB).
pub const MAX_AUTO_PIECE_LENGTH: u32 = 16 * 1024 * 1024;

/// The largest piece length accepted when given (256 MiB, mktorrent's `-l 28`).
pub const MAX_PIECE_LENGTH: u32 = 256 * 1024 * 1024;

/// The most pieces the automatic choice aims at.
pub const TARGET_PIECES: u64 = 2000;

/// The automatic piece length for `total` bytes: the smallest power of two
/// that makes at most [`TARGET_PIECES`] pieces, kept between
/// [`MIN_PIECE_LENGTH`] and [`MAX_AUTO_PIECE_LENGTH`]. Between those bounds a
/// torrent thus has 1,001 to 2,000 pieces (a 1 GiB file: 1 MiB pieces, 1,024 of
/// them); smaller content has fewer 16 KiB pieces, larger content more 16 MiB
/// ones.
pub fn auto_piece_length(total: u64) -> u32 {
    let wanted = total.div_ceil(TARGET_PIECES).next_power_of_two();
    let clamped = wanted.clamp(
        u64::from(MIN_PIECE_LENGTH),
        u64::from(MAX_AUTO_PIECE_LENGTH),
    );
    // Within u32 after the clamp.
    u32::try_from(clamped).unwrap_or(MAX_AUTO_PIECE_LENGTH)
}

/// `length` when it is a power of two between [`MIN_PIECE_LENGTH`] and
/// [`MAX_PIECE_LENGTH`].
///
/// # Errors
/// [`CreateError::PieceLength`] otherwise.
pub fn check_piece_length(length: u64) -> Result<u32, CreateError> {
    let valid = length.is_power_of_two()
        && (u64::from(MIN_PIECE_LENGTH)..=u64::from(MAX_PIECE_LENGTH)).contains(&length);
    match u32::try_from(length) {
        Ok(len) if valid => Ok(len),
        _ => Err(CreateError::PieceLength {
            length,
            min: MIN_PIECE_LENGTH,
            max: MAX_PIECE_LENGTH,
        }),
    }
}

/// The number of pieces of `piece_length` that `total` bytes make.
///
/// # Errors
/// [`CreateError::TooManyPieces`] past [`MAX_PIECES`].
pub fn piece_count(total: u64, piece_length: u32) -> Result<u32, CreateError> {
    let count = total.div_ceil(u64::from(piece_length));
    u32::try_from(count)
        .ok()
        .filter(|_| count <= MAX_PIECES)
        .ok_or(CreateError::TooManyPieces {
            count,
            max: MAX_PIECES,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn the_automatic_length_aims_at_one_to_two_thousand_pieces() {
        assert_eq!(auto_piece_length(1), 16 * 1024);
        assert_eq!(auto_piece_length(10 * MIB), 16 * 1024);
        assert_eq!(auto_piece_length(GIB), 1 << 20);
        assert_eq!(auto_piece_length(4 * GIB + 1), 4 << 20);
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
        for total in [40 * MIB, 700 * MIB, GIB, 3 * GIB + 17, 20 * GIB, 31 * GIB] {
            let len = auto_piece_length(total);
            assert!(len.is_power_of_two());
            let pieces = total.div_ceil(u64::from(len));
            assert!((1001..=2000).contains(&pieces), "{total}: {pieces}");
        }
    }

    #[test]
    fn a_given_length_is_a_power_of_two_in_range() {
        assert_eq!(check_piece_length(16 * KIB).unwrap(), 16 * 1024);
        assert_eq!(check_piece_length(256 * MIB).unwrap(), 256 << 20);
        for bad in [0, 1, 8 * KIB, 24 * KIB, 512 * MIB, 3 * MIB, u64::MAX] {
            let err = check_piece_length(bad).unwrap_err();
            assert!(matches!(err, CreateError::PieceLength { .. }), "{bad}");
        }
    }

    #[test]
    fn piece_counts_round_up_and_are_bounded() {
        assert_eq!(piece_count(1, 16 * 1024).unwrap(), 1);
        assert_eq!(piece_count(32 * KIB, 16 * 1024).unwrap(), 2);
        assert_eq!(piece_count(32 * KIB + 1, 16 * 1024).unwrap(), 3);
        let err = piece_count(MAX_PIECES * 16 * KIB + 1, 16 * 1024).unwrap_err();
        assert!(matches!(err, CreateError::TooManyPieces { .. }));
    }
}
