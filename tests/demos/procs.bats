#!/usr/bin/env bats

load common
