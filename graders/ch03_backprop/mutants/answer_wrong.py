# mutant: the wrong answer to the multiple-choice question ("the new weights w - lr * dL/dw")
# replaces: answer
# caught-by: test_question
answer = "C"
