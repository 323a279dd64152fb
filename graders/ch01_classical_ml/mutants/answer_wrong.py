# mutant: the wrong answer to the multiple-choice question ("the classifiers could not be trained")
# replaces: answer
# caught-by: test_question
answer = "A"
