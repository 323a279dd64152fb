"""nbgrader configuration for the dlvision course.

Every setting here can be changed for one run without touching code, e.g.
``dlvision autograde ch02_neurons --TrustedExecute.timeout=60`` or ``nbgrader autograde ... --Class.trait=value``.
"""
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, GetGrades, IgnorePattern, IncludeHeaderFooter, LimitOutput,
                                    LockCells, SaveAutoGrades)
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor

from dlvision.grading.preprocessor import TrustedExecute

c = get_config()  # noqa: F821 - provided by traitlets when this file is loaded

c.CourseDirectory.course_id = "dlvision"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.CourseDirectory.solution_directory = "solutions"

# Grading: student code runs in the sandboxed kernel; hidden grade cells are scored by trusted graders.
c.Autograde.autograde_preprocessors = [TrustedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
c.OverwriteCells.add_missing_cells = True   # a deleted grade cell is put back and graded
c.TrustedExecute.timeout = 30                # seconds per student cell; then the kernel is interrupted
c.TrustedExecute.call_timeout = 30           # seconds per grader call into the student's kernel
c.TrustedExecute.skipped_tests = "exclude"   # gpu tests skipped without CUDA do not count ("forfeit": count as failed)
c.SandboxedKernelManager.memory_limit = 6 << 30
c.SandboxedKernelManager.cpu_threads = 1     # one torch thread per student kernel; grade in parallel instead
c.SandboxedKernelManager.require_sandbox = False  # True refuses to grade where bubblewrap cannot run

# Feedback and solutions never show where the hidden graders live.
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme, ClearHiddenTests]
