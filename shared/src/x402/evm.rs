//! The EVM side of x402's `exact` scheme, pure: addresses (EIP-55), 256-bit integers from
//! decimal strings, the EIP-712 digest of an EIP-3009 `TransferWithAuthorization`, and the
//! secp256k1 recovery of its signer. No I/O, no transport.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};

pub fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `0x`-prefixed hex (either case) into exactly `N` bytes.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.len() != 2 * N || !digits.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A 20-byte account or contract address; shown EIP-55 checksummed, compared as bytes (so
/// case never matters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// `0x` and 40 hex digits, any case (a checksum is not required of what we read).
    pub fn parse(text: &str) -> Option<Self> {
        parse_hex::<20>(text).map(Address)
    }

    /// The EIP-55 form: a hex letter is upper case where the Keccak-256 of the lower-case
    /// address has a nibble of 8 or more.
    pub fn checksummed(&self) -> String {
        let lower = hex(&self.0);
        let hash = keccak(&[lower.as_bytes()]);
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }

    pub fn lowercase(&self) -> String {
        format!("0x{}", hex(&self.0))
    }

    fn word(&self) -> [u8; 32] {
        let mut word = [0u8; 32];
        word[12..].copy_from_slice(&self.0);
        word
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.checksummed())
    }
}

/// A `uint256`, big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct U256(pub [u8; 32]);

impl U256 {
    /// A decimal string of digits only (no sign, no exponent); `None` past 2²⁵⁶ − 1.
    pub fn from_decimal(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for digit in text.bytes().map(|b| u32::from(b - b'0')) {
            let mut carry = digit;
            for byte in out.iter_mut().rev() {
                let value = u32::from(*byte) * 10 + carry;
                *byte = (value & 0xff) as u8;
                carry = value >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(U256(out))
    }

    pub fn from_u128(value: u128) -> Self {
        let mut out = [0u8; 32];
        out[16..].copy_from_slice(&value.to_be_bytes());
        U256(out)
    }

    /// The value, when it fits.
    pub fn to_u128(self) -> Option<u128> {
        if self.0[..16].iter().any(|b| *b != 0) {
            return None;
        }
        let mut low = [0u8; 16];
        low.copy_from_slice(&self.0[16..]);
        Some(u128::from_be_bytes(low))
    }
}

/// The token's EIP-712 domain: `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`.
pub struct Domain<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

impl Domain<'_> {
    pub fn separator(&self) -> [u8; 32] {
        let type_hash = keccak(&[
            b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
        ]);
        keccak(&[
            &type_hash,
            &keccak(&[self.name.as_bytes()]),
            &keccak(&[self.version.as_bytes()]),
            &U256::from_u128(u128::from(self.chain_id)).0,
            &self.verifying_contract.word(),
        ])
    }
}

/// EIP-3009's `TransferWithAuthorization`, as signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferWithAuthorization {
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub valid_after: U256,
    pub valid_before: U256,
    pub nonce: [u8; 32],
}

impl TransferWithAuthorization {
    pub fn struct_hash(&self) -> [u8; 32] {
        let type_hash = keccak(&[b"TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"]);
        keccak(&[
            &type_hash,
            &self.from.word(),
            &self.to.word(),
            &self.value.0,
            &self.valid_after.0,
            &self.valid_before.0,
            &self.nonce,
        ])
    }

    /// `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
    pub fn digest(&self, domain: &Domain<'_>) -> [u8; 32] {
        keccak(&[&[0x19, 0x01], &domain.separator(), &self.struct_hash()])
    }
}

/// The signer of `digest` by a 65-byte `r ‖ s ‖ v` signature: `v` 27 or 28 (0 and 1 read as
/// 27 and 28), `s` in the lower half of the curve order (as USDC enforces). `None` for anything
/// else, or a signature that recovers no key.
pub fn recover_signer(digest: &[u8; 32], signature: &[u8; 65]) -> Option<Address> {
    let v = match signature[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return None,
    };
    let signature_rs = Signature::from_slice(&signature[..64]).ok()?;
    // A high `s` is the malleable twin of a valid signature: refused.
    if signature_rs.normalize_s().is_some() {
        return None;
    }
    let key = VerifyingKey::recover_from_prehash(digest, &signature_rs, RecoveryId::from_byte(v)?)
        .ok()?;
    Some(address_of(&key))
}

/// The address of a public key: the last 20 bytes of the Keccak-256 of its uncompressed point.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak(&[&point.as_bytes()[1..]]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash[12..]);
    Address(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's test vector (the local domain).
    fn vector() -> (Domain<'static>, TransferWithAuthorization) {
        let domain = Domain {
            name: "USDC",
            version: "2",
            chain_id: 84532,
            verifying_contract: Address::parse("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
                .unwrap(),
        };
        let authorization = TransferWithAuthorization {
            from: Address::parse("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23").unwrap(),
            to: Address::parse("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap(),
            value: U256::from_decimal("5000000").unwrap(),
            valid_after: U256::from_decimal("0").unwrap(),
            valid_before: U256::from_decimal("1900000000").unwrap(),
            nonce: [0x11; 32],
        };
        (domain, authorization)
    }

    const SIGNATURE: &str = "0x2d7c9a36f38d6b59db76067dcb1328b1b4f25cc7d262f31c9f230571e607c3c11e212dffcf2f4a0de40f7c0409e3b8f4da7b08b46306b23652aa7a332b427f761b";

    #[test]
    fn the_contract_test_vector_hashes_and_recovers_its_signer() {
        let (domain, authorization) = vector();
        assert_eq!(
            hex(&domain.separator()),
            "71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"
        );
        assert_eq!(
            hex(&authorization.struct_hash()),
            "034c19d7a3f7a11e5e90b7e9c5ab167167707007884b10a829b2398ef99476ef"
        );
        let digest = authorization.digest(&domain);
        assert_eq!(
            hex(&digest),
            "52eda6592ca9daec58f3509a092402eb826483d663778ca463158455dc47254a"
        );
        let signature = parse_hex::<65>(SIGNATURE).unwrap();
        assert_eq!(
            recover_signer(&digest, &signature),
            Some(authorization.from)
        );
        // The key of the vector signs the same digest to the same signer.
        let key = k256::ecdsa::SigningKey::from_slice(
            &parse_hex::<32>("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(address_of(key.verifying_key()), authorization.from);
    }

    #[test]
    fn v_as_0_or_1_is_read_as_27_or_28_and_a_high_s_or_another_digest_is_refused() {
        let (domain, authorization) = vector();
        let digest = authorization.digest(&domain);
        let mut signature = parse_hex::<65>(SIGNATURE).unwrap();
        signature[64] -= 27;
        assert_eq!(
            recover_signer(&digest, &signature),
            Some(authorization.from)
        );
        signature[64] = 29;
        assert_eq!(recover_signer(&digest, &signature), None);
        // s → n − s (and v flipped): the same point, refused for malleability.
        let signature = parse_hex::<65>(SIGNATURE).unwrap();
        let rs = Signature::from_slice(&signature[..64]).unwrap();
        let (r, s) = rs.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut malleable = [0u8; 65];
        malleable[..64].copy_from_slice(&high.to_bytes());
        malleable[64] = 27 + (1 - (signature[64] - 27));
        assert_eq!(recover_signer(&digest, &malleable), None);
        let mut other = authorization.clone();
        other.value = U256::from_decimal("5000001").unwrap();
        assert_ne!(
            recover_signer(&other.digest(&domain), &signature),
            Some(authorization.from)
        );
    }

    #[test]
    fn addresses_are_shown_checksummed_and_decimals_parse_exactly() {
        let address = Address::parse("0x036cbd53842c5426634e7929541ec2318f3dcf7e").unwrap();
        assert_eq!(
            address.checksummed(),
            "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
        );
        assert_eq!(
            U256::from_decimal("5000000").unwrap().to_u128(),
            Some(5_000_000)
        );
        assert!(U256::from_decimal("-1").is_none());
        assert!(U256::from_decimal("1e6").is_none());
        assert!(U256::from_decimal(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936"
        )
        .is_none());
    }
}
