//go:build !linux

package haproxytest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
