//! Decoders. (To be written.)
