//! Write-ahead log. (To be written.)
