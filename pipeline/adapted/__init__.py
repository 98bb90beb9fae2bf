"""Test-time adaptation of trained members to another lab's images (AdaBN, TENT, TTA)."""
