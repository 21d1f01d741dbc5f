//! x402 checkout (tests below).
