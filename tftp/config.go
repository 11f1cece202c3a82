package tftp

import (
	"fmt"
	"log/slog"
	"os"
	"time"
)

// config is a Server's fields with defaults applied, fixed for one Serve.
type config struct {
	root         *os.Root
	memory       *memory // nil when CacheSize is negative
	schedule     schedule
	maxTransfers int64
	maxPerClient int // 0: no per-client cap
	maxBlockSize int
	grace        time.Duration
	log          *slog.Logger
}

func (s *Server) config() (config, error) {
	c := config{
		schedule:     schedule{first: s.Timeout, max: s.MaxTimeout, retries: s.Retries},
		maxTransfers: int64(s.MaxTransfers),
		maxBlockSize: s.MaxBlockSize,
		grace:        s.ShutdownTimeout,
		log:          s.Log,
	}
	if c.schedule.first <= 0 {
		c.schedule.first = DefaultTimeout
	}
	if c.schedule.max <= 0 {
		c.schedule.max = DefaultMaxTimeout
	}
	// A Timeout above MaxTimeout means a fixed interval, not a shrinking one.
	c.schedule.max = max(c.schedule.max, c.schedule.first)
	if c.schedule.retries <= 0 {
		c.schedule.retries = DefaultRetries
	}
	if c.maxTransfers <= 0 {
		c.maxTransfers = DefaultMaxTransfers
	}
	switch {
	case s.MaxPerClient == 0:
		c.maxPerClient = DefaultMaxPerClient
	case s.MaxPerClient > 0:
		c.maxPerClient = s.MaxPerClient
	}
	if c.maxBlockSize == 0 {
		c.maxBlockSize = DefaultMaxBlockSize
	}
	// pin/tftp's SetBlockSize silently ignores values outside (512, 65465),
	// which would leave blksize uncapped: refuse them instead.
	if c.maxBlockSize <= 512 || c.maxBlockSize > 65464 {
		return config{}, fmt.Errorf("tftp: MaxBlockSize %d out of range 513..65464", c.maxBlockSize)
	}
	if c.grace <= 0 {
		c.grace = c.schedule.giveUp()
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	switch {
	case s.CacheSize == 0:
		c.memory = newMemory(DefaultCacheSize)
	case s.CacheSize > 0:
		c.memory = newMemory(s.CacheSize)
	}
	if c.memory != nil && s.Static {
		c.memory.settle = 0
	}
	dir := s.Root
	if dir == "" {
		dir = DefaultRoot
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return config{}, fmt.Errorf("tftp: open root: %w", err)
	}
	c.root = root
	return c, nil
}
