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
	timeout      time.Duration
	retries      int
	maxTransfers int64
	maxBlockSize int
	grace        time.Duration
	log          *slog.Logger
}

func (s *Server) config() (config, error) {
	c := config{
		timeout:      s.Timeout,
		retries:      s.Retries,
		maxTransfers: int64(s.MaxTransfers),
		maxBlockSize: s.MaxBlockSize,
		grace:        s.ShutdownTimeout,
		log:          s.Log,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.retries <= 0 {
		c.retries = DefaultRetries
	}
	if c.maxTransfers <= 0 {
		c.maxTransfers = DefaultMaxTransfers
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
		c.grace = c.timeout * time.Duration(c.retries+1)
	}
	if c.log == nil {
		c.log = slog.Default()
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
