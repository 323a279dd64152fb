# mutant: the wrong answer to the multiple-choice question ("they keep outputs between 0 and 1")
# replaces: answer
# caught-by: test_question
answer = "A"
