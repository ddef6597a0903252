"""The GPU measurement: `busy` times training on an accelerator, `wheels` fetches here what a
GPU machine of the device tool lacks, `run.sh` is the one prepared command run there."""
