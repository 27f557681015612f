"""The test suite. A regular package (not a namespace one): torch-fidelity installs a top-level `tests`
package of its own into site-packages, which would otherwise shadow this folder."""
