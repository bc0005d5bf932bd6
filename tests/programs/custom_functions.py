"""Custom autograd Functions as tutorials write them: an exp that saves its output, a clamp
with a straight-through gradient, needs_input_grad, non-differentiable outputs, and
gradcheck in double precision."""
import torch


class MyExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, i):
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_output):
        result, = ctx.saved_tensors
        return grad_output * result


class StraightThroughClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class MulConstant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, constant):
        ctx.constant = constant
        return tensor * constant

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.constant, None


class LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias=None):
        ctx.save_for_backward(input, weight, bias)
        output = input.mm(weight.t())
        if bias is not None:
            output += bias.unsqueeze(0).expand_as(output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, bias = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = grad_output.mm(weight)
        if ctx.needs_input_grad[1]:
            grad_weight = grad_output.t().mm(input)
        if bias is not None and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(0)
        return grad_input, grad_weight, grad_bias


x = torch.linspace(-1, 1, 5, requires_grad=True)
y = MyExp.apply(x)
print(y)
y.sum().backward()
print(x.grad)

x = torch.linspace(-2, 2, 5, requires_grad=True)
y = StraightThroughClamp.apply(x, -1.0, 1.0)
(y * torch.arange(5.0)).sum().backward()
print(y.detach(), x.grad)

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = MulConstant.apply(x, 5.5)
y.backward(torch.ones(2))
print(y, x.grad)

inp = torch.linspace(-1, 1, 6, dtype=torch.double).reshape(2, 3).requires_grad_()
weight = torch.linspace(0.5, 2, 12, dtype=torch.double).reshape(4, 3).requires_grad_()
bias = torch.linspace(-0.3, 0.3, 4, dtype=torch.double).requires_grad_()
out = LinearFn.apply(inp, weight, bias)
print(out)
out.sum().backward()
print(inp.grad)
print(weight.grad)
print(bias.grad)
print(torch.autograd.gradcheck(LinearFn.apply, (inp, weight, bias), eps=1e-6, atol=1e-4))
print(torch.autograd.gradcheck(MyExp.apply, (torch.linspace(-1, 1, 4, dtype=torch.double,
                                                             requires_grad=True),)))
