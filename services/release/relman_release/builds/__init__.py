"""Builds from source on the Release service: the source store and its archive checks, the
runner that builds images in the background, build logs, and export/import of builds."""
