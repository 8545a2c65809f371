//! Server. (To be written.)
