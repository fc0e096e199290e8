"""MobileNet building blocks shared by space=mobilenet and space=ofa_mbv3 (static and elastic MBConv)."""
