"""nbgrader configuration for the dlvision course.

Every setting here can be changed for one run without touching code, e.g.
``dlvision autograde ch02_neurons --TrustedExecute.timeout=60`` or ``nbgrader autograde ... --Class.trait=value``.
"""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, DeduplicateIds, GetGrades, IgnorePattern, IncludeHeaderFooter,
                                    LimitOutput, LockCells, OverwriteCells, OverwriteKernelspec, SaveAutoGrades)

from dlvision.grading.cells import RestoreGradeCells
from dlvision.grading.preprocessor import TrustedExecute

c = get_config()  # noqa: F821 - provided by traitlets when this file is loaded

c.CourseDirectory.course_id = "dlvision"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.CourseDirectory.solution_directory = "solutions"
# nbgrader's exchange (release, fetch, submit, collect, feedback): a folder of the course's own, so that no system
# folder (and no root) is needed. Students' configurations name the same folder (README, "Using it").
c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
# nbgrader zip_collect of an LMS download (downloaded/<assignment>/archive/*.zip). Canvas names each file
# "<lastfirst>[_LATE]_<canvas user id>_<submission id>_<notebook>[-<n>].ipynb"; the first field is the student id
# here (use the same ids in the gradebook, or take <canvas user id> instead). The pattern is matched against the
# file's whole path. Unknown notebook names are skipped.
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[A-Za-z0-9]+)(?:_LATE)?_\d+_\d+_(?P<file_id>[A-Za-z0-9_.]+?)(?:-\d+)?\.ipynb$")
c.ZipCollectApp.strict = True

# Sanitizing: nbgrader's steps, with every cell first given the role the gradebook records for it.
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreGradeCells,
                                      OverwriteCells, CheckCellMetadata]
# Grading: student code runs in sandboxed kernels; hidden grade cells are scored by trusted graders.
c.Autograde.autograde_preprocessors = [TrustedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.OverwriteCells.add_missing_cells = True   # a deleted grade cell is put back and graded
c.TrustedExecute.timeout = 30                # seconds per student cell; then the kernel is interrupted
c.TrustedExecute.notebook_budget = 300       # seconds for all student cells together
c.TrustedExecute.call_timeout = 30           # seconds per grader call into the student's code
c.TrustedExecute.grading_budget = 300        # seconds for all grader calls of one submission together
c.TrustedExecute.skipped_tests = "exclude"   # gpu tests skipped without CUDA do not count ("forfeit": count as failed)
c.SandboxedKernelManager.memory_limit = 6 << 30
c.SandboxedKernelManager.process_limit = 128  # processes and threads per kernel (enforced when grading as root)
c.SandboxedKernelManager.disk_limit = 256 << 20  # the kernel's working folder and /tmp, each
c.SandboxedKernelManager.cpu_threads = 1     # one torch thread per student kernel; grade in parallel instead
c.SandboxedKernelManager.require_sandbox = False  # True refuses to grade where bubblewrap cannot run

# Feedback and solutions never show where the hidden graders live; student HTML is sanitized (no live scripts).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, SanitizeHTML, CSSHTMLHeaderPreprocessor]
c.HTMLExporter.sanitize_html = True
c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme, ClearHiddenTests]
