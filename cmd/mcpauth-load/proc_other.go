//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// errNoCPUTime: CPU times are read from /proc (Linux only).
var errNoCPUTime = errors.New("CPU time not available on this system")

// childAttr: without Linux's parent-death signal, the servers are stopped by our own cleanup
// only (a SIGKILL of this process leaves them running).
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

func processCPU(int) (time.Duration, error) { return 0, errNoCPUTime }

func selfCPU() (time.Duration, error) { return 0, errNoCPUTime }

func machineBusy() (time.Duration, error) { return 0, errNoCPUTime }
